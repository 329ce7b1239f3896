import type { Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { PIN_LABEL } from '../directory/dane.js';
import { TYPE } from '../directory/dnswire.js';
import { verifySigned, type VerifiedKeys, type VerifiedRecord } from '../directory/signed.js';
import { lookupRecords, txtText, type Resolver } from './dns.js';
import { parsePin, pinMatches, pinProves, type Pin } from './pin.js';
import { getJson, type Fetch } from './web.js';

/** Where a domain's own statements are read: its DNS (through the resolvers) and its HTTPS well-known record. */
export interface DomainSources {
  resolver: Resolver;
  /** Base URL of a domain's web server; default `https://<domain>`. */
  wellKnownBase: (domain: Domain) => string;
  fetch?: Fetch;
  timeoutMs?: number;
  clock: () => Date;
}

export const WELL_KNOWN_RECORD = '/.well-known/mailmesh/record';

/**
 * The `_mailmesh.<domain>` TXT pins (docs/architecture.md "Publication"). Strings that are not `v=mm1` are
 * ignored; a broken mm1 string is reported in `broken`. NXDOMAIN/NODATA is no pins.
 */
export async function readPins(s: DomainSources, domain: Domain, owner = `${PIN_LABEL}.${domain}`): Promise<{ pins: Pin[]; broken: string[] }> {
  const pins: Pin[] = [];
  const broken: string[] = [];
  for (const rr of await lookupRecords(s.resolver, owner, TYPE.TXT)) {
    try {
      const pin = parsePin(txtText(rr.rdata));
      if (pin) pins.push(pin);
    } catch (e) {
      if (!isMailmeshError(e)) throw e;
      broken.push(e.message);
    }
  }
  return { pins, broken };
}

/** The signed record a domain serves itself at `<base>/.well-known/mailmesh/record`, verified; undefined when it serves none. */
export async function readWellKnown(s: DomainSources, domain: Domain): Promise<VerifiedRecord | undefined> {
  const body = await getJson(s.wellKnownBase(domain) + WELL_KNOWN_RECORD, { fetch: s.fetch, timeoutMs: s.timeoutMs });
  if (body === undefined) return undefined;
  const v = await verifySigned(body, s.clock());
  if (v.domain !== domain) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `the well-known record of ${domain} is for ${v.domain}`);
  return v;
}

function describe(keys: VerifiedKeys): string {
  return [keys.openpgp && `pgp=${keys.openpgp.fingerprint}`, keys.smime && `smime=${keys.smime.fingerprint}`].filter(Boolean).join(' ');
}

/**
 * Proof of domain control (docs/architecture.md "Federation"): the domain's `_mailmesh` TXT pins these keys,
 * or its well-known HTTPS record carries the same OpenPGP key. Returns how it was proved.
 * PIN_MISMATCH: a pin names other keys (and the well-known record does not save it);
 * ADDRESS_FORBIDDEN: the web server is at an address the fetch refuses (federation/outbound.ts);
 * PROOF_MISSING: neither exists; LOOKUP_UNAVAILABLE: neither source could be asked.
 */
export async function proveControl(s: DomainSources, domain: Domain, keys: VerifiedKeys): Promise<string> {
  const problems: MailmeshError[] = [];
  let mismatch: string | undefined;
  try {
    const { pins, broken } = await readPins(s, domain);
    if (pins.some((p) => pinMatches(p, keys))) return `_mailmesh TXT pins ${describe(keys)}`;
    if (pins.some((p) => pinProves(p, keys))) return `_mailmesh TXT pins pgp=${keys.openpgp!.fingerprint}, which signs the record and its S/MIME certificate (the TXT's smime= names an earlier leaf)`;
    if (pins.length || broken.length) mismatch = `_mailmesh.${domain} says ${JSON.stringify([...pins.map((p) => `pgp=${p.pgp ?? '-'} smime=${p.smime ?? '-'}`), ...broken])}`;
  } catch (e) {
    if (!isMailmeshError(e)) throw e;
    problems.push(e);
  }
  try {
    const v = await readWellKnown(s, domain);
    if (v && v.keys.openpgp.fingerprint === keys.openpgp?.fingerprint) return `${WELL_KNOWN_RECORD} of ${domain} carries pgp=${v.keys.openpgp.fingerprint}`;
    if (v) mismatch ??= `${WELL_KNOWN_RECORD} of ${domain} carries pgp=${v.keys.openpgp.fingerprint}`;
  } catch (e) {
    if (!isMailmeshError(e)) throw e;
    problems.push(e);
  }
  if (mismatch) throw new MailmeshError('PIN_MISMATCH', `${mismatch}, the record has ${describe(keys)}`);
  // Both sources failed: unavailable (re-verification then changes nothing), even when one was refused.
  if (problems.length === 2) throw new MailmeshError('LOOKUP_UNAVAILABLE', problems.map((p) => p.message).join('; '));
  const forbidden = problems.find((p) => p.code === 'ADDRESS_FORBIDDEN');
  if (forbidden) throw forbidden;
  throw new MailmeshError('PROOF_MISSING', `${domain}: publish "_mailmesh.${domain}. TXT" or serve ${WELL_KNOWN_RECORD}`);
}
