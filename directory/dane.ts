import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import type { Address } from './domain.js';
import { txtPresentation } from './dnswire.js';
import { MailmeshError } from './errors.js';
import type { DomainRecord } from './record.js';
import { pemToDer } from './smime.js';

/**
 * DNS publication of domain keys, protocol-neutral: owner names and RDATA contents that the
 * DNS face (and a member's own DNS operator, via `zone export`) put into zones.
 */

/**
 * RFC 7929 §3 / RFC 8162 §3: the hash label of an address is the SHA2-256 of the UTF-8
 * local part, truncated to 28 octets, in lower-case hex (56 digits). The local part is
 * hashed as given: RFC 7929 §3 does not case-fold it.
 */
export function localPartHash(local: string): string {
  return createHash('sha256').update(local, 'utf8').digest('hex').slice(0, 56);
}

/** RFC 7929 §3: `<hash>._openpgpkey.<domain>`. */
export function openPgpKeyOwner(a: Address): string {
  return `${localPartHash(a.local)}._openpgpkey.${a.domain}`;
}

/** RFC 8162 §3: `<hash>._smimecert.<domain>`. */
export function smimeaOwner(a: Address): string {
  return `${localPartHash(a.local)}._smimecert.${a.domain}`;
}

/** The label of the domain-control proof and key pin in a member's own zone (docs/architecture.md "Publication"). */
export const PIN_LABEL = '_mailmesh';

/**
 * docs/architecture.md "Publication": `v=mm1; pgp=<fingerprint>; smime=<sha256 of cert DER>; dir=<directory URL>`
 * and, when the record announces capabilities, `; caps=<name>,<name>` (record.ts SMIME_AEAD; older
 * readers ignore the field); absent keys are left out.
 */
export function pinText(r: DomainRecord, directoryUrl: string): string {
  const parts = ['v=mm1'];
  if (r.keys.openpgp) parts.push(`pgp=${r.keys.openpgp.fingerprint}`);
  if (r.keys.smime) parts.push(`smime=${r.keys.smime.fingerprint}`);
  parts.push(`dir=${directoryUrl}`);
  if (r.capabilities?.length) parts.push(`caps=${r.capabilities.join(',')}`);
  return parts.join('; ');
}

/** The pin TXT record to publish, in RFC 1035 §5 master-file form (strings of at most 255 octets, §3.3.14). */
export function txtRecordLine(r: DomainRecord, directoryUrl: string): string {
  return `${PIN_LABEL}.${r.domain}. 300 IN TXT ${txtPresentation(pinText(r, directoryUrl))}`;
}

/** RFC 7929 §2.1: OPENPGPKEY RDATA is the binary transferable public key (RFC 4880 §11.1), i.e. the de-armored key. */
export async function openPgpKeyData(armored: string): Promise<Buffer> {
  try {
    const { data, type } = await openpgp.unarmor(armored);
    if (type !== openpgp.enums.armor.publicKey) throw new Error('not a public key block');
    if (!(data instanceof Uint8Array) || data.length === 0) throw new Error('no key data in the armor');
    return Buffer.from(data);
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', e instanceof Error ? e.message : String(e), { cause: e });
  }
}

/**
 * RFC 8162 §2 (RDATA as RFC 6698 §2.1): SMIMEA `3 0 0 <leaf cert DER>`: usage 3 (DANE-EE: the
 * domain's own certificate), selector 0 (full certificate), matching type 0 (exact, no hash).
 */
export function smimeaData(leafPem: string): { usage: 3; selector: 0; matchingType: 0; data: Buffer } {
  return { usage: 3, selector: 0, matchingType: 0, data: pemToDer(leafPem) };
}
