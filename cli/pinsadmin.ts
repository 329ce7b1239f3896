import { EXIT } from './exit.js';
import { parseDomain } from '../directory/domain.js';
import { MailmeshError } from '../directory/errors.js';
import type { CommandOutput } from './commands.js';
import type { Discovery } from '../federation/discovery.js';
import { keysText, type PinEntry, type PinStore, type PinViolation } from '../federation/pins.js';

/**
 * `mailmesh pins list|show|accept|forget` (docs/federation.md "Pins"): what the administrator
 * sees of the pins a gateway keeps, and how a refused key change is settled. The pins may live
 * in the store or in the pins file (cli/app.ts pinStoreFor); both are read fresh here, and a
 * running `serve` sees what these commands wrote at its next lookup of the domain (after its
 * cached answer expires, federation.cacheTtlSec).
 */

export interface PinsAdmin {
  pins: PinStore;
  discovery: Pick<Discovery, 'discover' | 'forget'>;
}

const violationText = (v: PinViolation) => `${v.at}  ${v.key ?? 'openpgp'}: ${v.source} offered ${v.offered}${v.revoked ? ' (revoked)' : ''}; pinned ${v.pinned}`;
const nextText = (p: PinEntry) => (p.nextKeys ? keysText(p.nextKeys) : [p.next && `pgp=${p.next}`, p.nextSmime && `smime=${p.nextSmime}`].filter(Boolean).join(' ') || '-');

async function pinOf(pins: PinStore, input: string): Promise<{ domain: string; pin: PinEntry }> {
  const domain = parseDomain(input);
  const pin = await pins.get(domain);
  if (!pin) throw new MailmeshError('NOT_FOUND', `no pin for ${domain}`);
  return { domain, pin };
}

/** `pins list`: one line a domain: pinned fingerprints, trust, next keys, violations count. */
export async function pinsList(pins: PinStore, json = false): Promise<CommandOutput> {
  const rows: [string, PinEntry][] = [];
  for (const d of await pins.list()) {
    const p = await pins.get(d);
    if (p) rows.push([d, p]);
  }
  if (json) return { text: JSON.stringify(Object.fromEntries(rows), null, 2), exitCode: EXIT.OK };
  const lines = rows.map(([d, p]) => [d, keysText(p.keys), `trust=${p.trust ?? 'unauthenticated'}`, `next=${nextText(p)}`, `violations=${p.violations.length}`].join('\t'));
  return { text: lines.join('\n') || 'no pins', exitCode: EXIT.OK };
}

/** `pins show <domain>`: everything the pin holds, the violations included. */
export async function pinsShow(pins: PinStore, input: string, json = false): Promise<CommandOutput> {
  const { domain, pin } = await pinOf(pins, input);
  if (json) return { text: JSON.stringify(pin, null, 2), exitCode: EXIT.OK };
  const lines = [
    `domain      ${domain}`,
    `openpgp     ${pin.keys.openpgp?.fingerprint ?? '-'}${pin.keys.openpgp?.expires ? ` (expires ${pin.keys.openpgp.expires})` : ''}`,
    `smime       ${pin.keys.smime?.fingerprint ?? '-'}${pin.keys.smime ? ` (until ${pin.keys.smime.notAfter})` : ''}`,
    `trust       ${pin.trust ?? 'unauthenticated'}`,
    `pinned at   ${pin.at}`,
    `next        ${nextText(pin)}`,
    ...(pin.previous ?? []).map((p) => `previous    ${keysText(p.keys)} (replaced ${p.retired}, valid until ${p.until})`),
    ...(pin.revoked ?? []).map((f) => `revoked     ${f}`),
    `violations  ${pin.violations.length}`,
    ...pin.violations.map((v) => `  ${violationText(v)}`),
  ];
  return { text: lines.join('\n'), exitCode: EXIT.OK };
}

/**
 * `pins accept <domain>`: takes the key offered by the last violation. Discovery runs again
 * accepting only that key (never a revoked one); NOT_FOUND when no source offers it any more.
 * The settled violations are cleared.
 */
export async function pinsAccept(a: PinsAdmin, input: string): Promise<CommandOutput> {
  const { domain, pin } = await pinOf(a.pins, input);
  const last = pin.violations[pin.violations.length - 1];
  if (!last) throw new MailmeshError('NOT_FOUND', `${domain}: no refused key change to accept`);
  if (last.revoked) throw new MailmeshError('KEY_REVOKED', `${last.offered}: revoked by ${domain}, never accepted`);
  // The violation names a key as `<fingerprint>`, `S/MIME <sha256>` or `S/MIME CA key <sha256>`.
  const fingerprint = last.offered.split(' ').pop()!;
  if (fingerprint === '-') throw new MailmeshError('NOT_FOUND', `${domain}: the last violation offered no key (${last.offered})`);
  const found = await a.discovery.discover(domain, { accept: fingerprint });
  const now = await a.pins.get(domain);
  if (now) await a.pins.put(domain, { ...now, violations: [] });
  return { text: `${domain}: accepted ${last.offered} from ${found.provenance.source}${found.provenance.origin ? ` (${found.provenance.origin})` : ''}; pinned ${keysText(found.keys)}`, exitCode: EXIT.OK };
}

/** `pins forget <domain>`: deletes the pin and the cached answer; the next lookup pins what it finds (trust on first use). */
export async function pinsForget(a: PinsAdmin, input: string): Promise<CommandOutput> {
  const { domain } = await pinOf(a.pins, input);
  await a.pins.delete(domain);
  await a.discovery.forget(domain);
  return { text: `${domain}: pin and cached answer deleted`, exitCode: EXIT.OK };
}
