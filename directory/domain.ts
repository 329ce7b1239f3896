import { domainToASCII } from 'node:url';
import { MailmeshError } from './errors.js';

/** A mail domain in its canonical form: IDNA A-labels, lower case, no trailing dot. */
export type Domain = string & { readonly __brand: 'Domain' };

/** An address whose domain part is canonical; the local part keeps its case (RFC 5321 §2.4). */
export interface Address {
  readonly local: string;
  readonly domain: Domain;
}

// RFC 1035 §2.3.1 / RFC 5890: LDH labels of 1–63 octets, the name at most 253 octets in text form.
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A domain name, normalised. Mail domains have at least two labels; `minLabels: 1` admits a
 * top-level domain where DNS allows one (a zone apex, RFC 1034 §4.2).
 */
export function parseDomain(input: string, opts: { minLabels?: 1 | 2 } = {}): Domain {
  if (typeof input !== 'string') throw new MailmeshError('DOMAIN_INVALID', 'not a string');
  const trimmed = input.trim().replace(/\.$/, '');
  if (trimmed === '' || /[\s/@:]/.test(trimmed)) throw new MailmeshError('DOMAIN_INVALID', JSON.stringify(input));
  // RFC 5891 §5: IDNA to ASCII (UTS #46 processing), which also lower-cases.
  const ascii = domainToASCII(trimmed).toLowerCase();
  if (!ascii || ascii.length > 253) throw new MailmeshError('DOMAIN_INVALID', JSON.stringify(input));
  const labels = ascii.split('.');
  if (labels.length < (opts.minLabels ?? 2) || !labels.every((l) => LABEL.test(l)) || /^[0-9]+$/.test(labels[labels.length - 1]!)) {
    throw new MailmeshError('DOMAIN_INVALID', JSON.stringify(input));
  }
  return ascii as Domain;
}

export function isDomain(input: string): boolean {
  try {
    parseDomain(input);
    return true;
  } catch {
    return false;
  }
}

// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets. We accept dot-atoms and
// printable UTF-8 (RFC 6531), and refuse what no mailbox can hold (controls, space, '@' outside quotes).
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const LOCAL_ATOM = /^[^\s@"(),:;<>[\\\]\x00-\x1f\x7f]+$/u;

export function parseAddress(input: string): Address {
  if (typeof input !== 'string') throw new MailmeshError('ADDRESS_INVALID', 'not a string');
  const s = input.trim().replace(/^<(.*)>$/, '$1');
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) throw new MailmeshError('ADDRESS_INVALID', JSON.stringify(input));
  const local = s.slice(0, at);
  if (Buffer.byteLength(local) > 64 || !LOCAL_ATOM.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    throw new MailmeshError('ADDRESS_INVALID', JSON.stringify(input));
  }
  let domain: Domain;
  try {
    domain = parseDomain(s.slice(at + 1));
  } catch {
    throw new MailmeshError('ADDRESS_INVALID', JSON.stringify(input));
  }
  return { local, domain };
}

export function formatAddress(a: Address): string {
  return `${a.local}@${a.domain}`;
}

/** The pseudo-address a domain key is published for (docs/architecture.md "Words"). */
export function domainKeyAddress(domain: Domain): Address {
  return { local: 'domainkey', domain };
}
