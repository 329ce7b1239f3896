import { EXIT } from './exit.js';
import { txtRecordLine } from '../directory/dane.js';
import type { Directory } from '../directory/directory.js';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import type { DomainRecord } from '../directory/record.js';
import type { Discovered } from '../federation/discovery.js';
import type { DoctorRow } from '../federation/doctor.js';
import { postJoin, postLeave } from '../federation/join.js';
import { keysText } from '../federation/pins.js';

/** What the CLI prints and its exit code; cli/main.ts only wires these. */
export interface CommandOutput {
  text: string;
  exitCode: number;
}

/** The domain a gateway speaks for: the named one, else its only locally generated domain. */
async function ownDomain(directory: Directory, name?: string): Promise<DomainRecord> {
  if (name) return directory.getRecord(name);
  const own = (await directory.listDomains()).filter((r) => r.provenance.source === 'local');
  if (own.length !== 1) throw new MailmeshError('BAD_REQUEST', `name the domain with --domain (local domains: ${own.map((r) => r.domain).join(', ') || 'none'})`);
  return own[0]!;
}

/** `mailmesh join <directory-url>`: signs the record with the domain key from the local store and posts it. */
export async function joinCommand(directory: Directory, url: string, name?: string): Promise<CommandOutput> {
  let r = await ownDomain(directory, name);
  if (!r.signed) r = await directory.resign(r.domain);
  try {
    const joined = await postJoin(url, r.signed!);
    return { text: `joined ${url}: ${joined.domain} (${joined.provenance.verified})`, exitCode: EXIT.OK };
  } catch (e) {
    if (isMailmeshError(e) && (e.code === 'PROOF_MISSING' || e.code === 'PIN_MISMATCH' || e.code === 'ADDRESS_FORBIDDEN')) {
      return { text: `${e.code}: ${e.message}\nPublish this record in the DNS of ${r.domain}, then run the join again:\n\n${txtRecordLine(r, url)}\n`, exitCode: EXIT.FAILURE };
    }
    throw e;
  }
}

/** `mailmesh leave <directory-url>`: a signed leave statement. */
export async function leaveCommand(directory: Directory, url: string, name?: string): Promise<CommandOutput> {
  const r = await ownDomain(directory, name);
  const secrets = await directory.getSecrets(r.domain);
  if (!secrets.openpgp || !r.keys.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${r.domain} has no OpenPGP key here`);
  const gone = await postLeave(url, r.domain, r.keys.openpgp.fingerprint, secrets.openpgp.armored, directory.clock());
  return { text: `left ${url}: ${gone.domain} (serial ${gone.serial})`, exitCode: EXIT.OK };
}

/** `mailmesh lookup`: the keys found and where they came from. */
export function lookupText(d: Discovered): CommandOutput {
  const lines = [
    `domain      ${d.domain}`,
    `openpgp     ${d.keys.openpgp?.fingerprint ?? '-'}`,
    `smime       ${d.keys.smime?.fingerprint ?? '-'}`,
    `source      ${d.provenance.source}${d.provenance.origin ? ` (${d.provenance.origin})` : ''}`,
    `verified    ${d.provenance.verified}`,
    `trust       ${d.provenance.trust ?? '-'}${d.provenance.trustPending ? ' (pending: a source that might authenticate it was unreachable)' : ''}`,
    `cache       ${d.cache}`,
  ];
  if (d.gateways?.smtp.length) lines.push(`gateways    ${d.gateways.smtp.join(', ')}`);
  // The keys that also sign validly: announced to replace these, and replaced within keys.retainDays.
  if (d.next) lines.push(`next        ${keysText(d.next)} (announced)`);
  for (const p of d.previous ?? []) lines.push(`previous    ${keysText(p)} (replaced, still valid)`);
  if (d.violation) lines.push(`VIOLATION   ${d.violation.source} offered ${d.violation.offered}; pinned ${d.violation.pinned} kept`);
  return { text: lines.join('\n'), exitCode: d.violation ? EXIT.VIOLATION : d.provenance.source === 'none' ? EXIT.FAILURE : EXIT.OK };
}

/** The table `mailmesh doctor` prints. */
export function renderDoctor(rows: DoctorRow[]): string {
  const w = Math.max(...rows.map((r) => r.check.length));
  return rows
    .map((r) => `${r.result.toUpperCase().padEnd(4)}  ${r.check.padEnd(w)}  ${r.detail}${r.fix ? `\n${' '.repeat(w + 8)}fix: ${r.fix}` : ''}`)
    .join('\n');
}
