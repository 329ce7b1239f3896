import { EXIT } from './exit.js';
import { txtRecordLine } from '../directory/dane.js';
import type { Directory } from '../directory/directory.js';
import { parseDomain } from '../directory/domain.js';
import { asMailmeshError, isMailmeshError, MailmeshError } from '../directory/errors.js';
import type { AddDomainOptions } from '../directory/directory.js';
import type { DomainRecord, DomainSecrets } from '../directory/record.js';
import type { CommandOutput } from './commands.js';
import { postJoin } from '../federation/join.js';
import { checkNextPinned, directoryRecord, isoSecond, keyExpiries, publishRecord, type PostResult } from '../federation/lifecycle.js';
import type { DomainSources } from '../federation/proof.js';
import { postVeto } from '../federation/recovery.js';
import type { Fetch } from '../federation/web.js';
import { parseSeen, seenKey } from '../gateway/gateway.js';

/** What the `mailmesh domain roll|renew|revoke|recover|veto` commands work with (cli/main.ts wires it from the configuration). */
export interface KeyCommandContext {
  directory: Directory;
  /** federation.directories. */
  directories: { url: string }[];
  /** For the `_mailmesh` TXT check before a switch. */
  sources: DomainSources;
  fetch?: Fetch;
}

function keyLines(prefix: string, keys: DomainRecord['keys'] | undefined): string[] {
  if (!keys) return [];
  const e = keyExpiries(keys);
  return [
    `${prefix}openpgp  ${keys.openpgp?.fingerprint ?? '-'}  expires ${isoSecond(e.openpgp)}`,
    `${prefix}smime    ${keys.smime?.fingerprint ?? '-'}  expires ${isoSecond(e.smime)}, CA ${isoSecond(e['smime-ca'])}`,
  ];
}

function postLines(results: PostResult[]): string[] {
  return results.map((p) => `directory ${p.url}: ${p.result}${p.detail ? ` (${p.detail})` : ''}`);
}

/** The TXT line that names these keys, to publish in the domain's DNS (the first directory's URL as dir=, as `mailmesh join` prints it). */
function txtFor(c: KeyCommandContext, r: DomainRecord, keys: DomainRecord['keys']): string {
  return txtRecordLine({ ...r, keys }, c.directories[0]?.url ?? 'https://directory.example');
}

/** After a local change: the record, and what each directory made of it (a failure undoes nothing; serve retries). */
async function changed(c: KeyCommandContext, what: string, r: DomainRecord, extra: string[] = []): Promise<CommandOutput> {
  const posted = await publishRecord(c.directory, r, c.directories.map((d) => d.url), c.fetch);
  return { text: [`${what} ${r.domain} (serial ${r.serial})`, ...keyLines('', r.keys), ...keyLines('next ', r.next), ...extra, ...postLines(posted)].join('\n'), exitCode: EXIT.OK };
}

/** `mailmesh domain roll <domain>`: announce the next keys. */
export async function rollAnnounce(c: KeyCommandContext, domain: string, overlapDays?: number): Promise<CommandOutput> {
  const r = await c.directory.announceRoll(domain, overlapDays === undefined ? {} : { overlapDays });
  return changed(c, 'announced the next keys of', r, [
    `switch   after ${isoSecond(r.rollover?.switchAfter)} (mailmesh domain roll ${r.domain} --finish)`,
    `Before the switch, add this TXT record to the DNS of ${r.domain} (keep the current one until the switch):`,
    '',
    txtFor(c, r, r.next ?? {}),
    '',
  ]);
}

/** `mailmesh domain roll <domain> --finish [--now]`: switch to the announced keys, once the `_mailmesh` TXT names them. */
export async function rollFinish(c: KeyCommandContext, domain: string, now: boolean): Promise<CommandOutput> {
  const current = await c.directory.getRecord(domain);
  if (!current.next || !current.rollover) throw new MailmeshError('ROLL_NOT_ANNOUNCED', current.domain);
  if (!now && c.directory.clock().getTime() < Date.parse(current.rollover.switchAfter)) throw new MailmeshError('ROLL_TOO_EARLY', `the switch is allowed after ${current.rollover.switchAfter}`);
  const proof = await checkNextPinned(c.sources, current.domain, current.next);
  const r = await c.directory.finishRoll(current.domain, { now });
  return changed(c, 'switched to the next keys of', r, [`proof    ${proof}`, 'The replaced keys are retained (keys.retainDays); remove the old _mailmesh TXT string now.']);
}

/** `mailmesh domain renew <domain>`: a new S/MIME leaf under the domain CA now. */
export async function renewCommand(c: KeyCommandContext, domain: string): Promise<CommandOutput> {
  const r = await c.directory.renewSmime(domain);
  return changed(c, 'renewed the S/MIME certificate of', r, [`Replace the TXT record of ${r.domain} (its smime= names the leaf):`, '', txtFor(c, r, r.keys), '']);
}

/** `mailmesh domain revoke <domain> [--reason …]`: revoke the keys and put new ones in their place at once. */
export async function revokeCommand(c: KeyCommandContext, domain: string, reason: 'compromised' | 'superseded'): Promise<CommandOutput> {
  const r = await c.directory.revokeKeys(domain, reason);
  return changed(c, `revoked (${reason}) the keys of`, r, [
    `Replace the TXT record of ${r.domain} with this one, then run \`mailmesh join <directory-url>\` for each directory that failed (serve retries too):`,
    '',
    txtFor(c, r, r.keys),
    '',
  ]);
}

async function openSecrets(directory: Directory, domain: string): Promise<DomainSecrets | undefined> {
  try {
    return await directory.getSecrets(domain);
  } catch (e) {
    if (isMailmeshError(e, 'DOMAIN_NOT_FOUND') || isMailmeshError(e, 'SEALED_DATA_CORRUPT')) return undefined;
    throw e;
  }
}

/**
 * `mailmesh domain recover <domain>`: the domain lost its private keys. Fresh keys on this node
 * (the domain is added when this store has no record of it, or re-created when its keys cannot be
 * opened here; keys that open are kept), and the record posted to every directory as a recovery:
 * each holds it down for its federation.recoveryHoldSec unless the holder of the old key vetoes.
 */
export async function recoverCommand(c: KeyCommandContext, domainInput: string, opts: AddDomainOptions): Promise<CommandOutput> {
  const domain = parseDomain(domainInput);
  const { directory } = c;
  let r = await directory.findRecord(domain, { unpublished: true });
  const lines: string[] = [];
  if (!r || r.provenance.source !== 'local' || !(await openSecrets(directory, domain))?.openpgp) {
    if (r) await directory.removeDomain(domain);
    r = await directory.addDomain(domain, { formats: opts.formats ?? r?.formats, gateways: opts.gateways ?? r?.gateways });
    lines.push(`created new keys for ${domain} (serial ${r.serial})`);
  } else lines.push(`the keys of ${domain} open on this node: posting them`);
  if (!r.signed) r = await directory.resign(domain);
  lines.push(...keyLines('', r.keys), `Publish this TXT record in the DNS of ${domain} (the directories check it):`, '', txtFor(c, r, r.keys), '');
  for (const { url } of c.directories) {
    try {
      const answer = await postJoin(url, r.signed!, c.fetch);
      if (answer.pendingRecovery) lines.push(`directory ${url}: held down until ${isoSecond(answer.pendingRecovery.effective)} (since ${isoSecond(answer.pendingRecovery.since)}; the holder of the old key can veto)`);
      else lines.push(`directory ${url}: ok (serial ${answer.serial})`);
    } catch (e) {
      const err = asMailmeshError(e);
      lines.push(`directory ${url}: failed (${err.code}: ${err.message})`);
    }
  }
  return { text: lines.join('\n'), exitCode: EXIT.OK };
}

/** `mailmesh domain veto <domain>`: refuse, with the current key's signature, every recovery a directory holds down for our domain. */
export async function vetoCommand(c: KeyCommandContext, domain: string): Promise<CommandOutput> {
  const r = await c.directory.getRecord(domain);
  const secrets = await c.directory.getSecrets(r.domain);
  if (!secrets.openpgp || !r.keys.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${r.domain} has no OpenPGP key here`);
  const lines: string[] = [];
  for (const { url } of c.directories) {
    try {
      const held = await directoryRecord(url, r.domain, c.fetch);
      if (!held?.pendingRecovery) {
        lines.push(`directory ${url}: no recovery pending`);
        continue;
      }
      await postVeto(url, r.domain, held.pendingRecovery.openpgp, secrets.openpgp.armored, c.directory.clock(), c.fetch);
      lines.push(`directory ${url}: vetoed the recovery to ${held.pendingRecovery.openpgp}`);
    } catch (e) {
      const err = asMailmeshError(e);
      lines.push(`directory ${url}: failed (${err.code}: ${err.message})`);
    }
  }
  return { text: lines.join('\n'), exitCode: lines.some((l) => l.includes(': failed (')) ? EXIT.FAILURE : EXIT.OK };
}

/** The key of ours a peer used, by name. */
function whichKey(r: DomainRecord, retained: DomainSecrets['retained'], fpr: string | undefined, kind: 'openpgp' | 'smime'): string {
  if (!fpr) return '-';
  const is = (k: DomainRecord['keys'] | undefined) => k?.[kind]?.fingerprint.toUpperCase() === fpr.toUpperCase();
  const name = is(r.keys) ? 'current' : is(r.next) ? 'next' : retained?.some((x) => is(x.keys)) ? 'retained' : 'unknown';
  return `${fpr} (${name})`;
}

/**
 * `mailmesh domain roll <domain> --status`: the phase and its dates, the keys and their expiry,
 * the retained keys, whether each directory serves the current and the next key, and which key
 * of ours each peer's latest message was encrypted to (store kv `lifecycle:seen:<domain>`, kept
 * by the gateway).
 */
export async function rollStatus(c: KeyCommandContext, domain: string): Promise<CommandOutput> {
  const r = await c.directory.getRecord(domain);
  const secrets = await openSecrets(c.directory, r.domain);
  const lines = [
    `domain    ${r.domain} (serial ${r.serial})`,
    r.rollover ? `phase     announced ${isoSecond(r.rollover.announced)}, switch after ${isoSecond(r.rollover.switchAfter)}` : 'phase     steady',
    ...keyLines('', r.keys),
    ...keyLines('next ', r.next),
  ];
  for (const x of secrets?.retained ?? []) {
    lines.push(`retained  openpgp ${x.keys.openpgp?.fingerprint ?? '-'} smime ${x.keys.smime?.fingerprint ?? '-'}, retired ${isoSecond(x.retired)}, kept until ${isoSecond(x.until)}${x.revoked ? ' (revoked)' : ''}`);
  }
  for (const { url } of c.directories) {
    try {
      const held = await directoryRecord(url, r.domain, c.fetch);
      const serves = (k: DomainRecord['keys'] | undefined, mine: DomainRecord['keys'] | undefined) => (mine?.openpgp ? (k?.openpgp?.fingerprint === mine.openpgp.fingerprint ? 'yes' : 'no') : '-');
      lines.push(held
        ? `directory ${url}: current ${serves(held.keys, r.keys)}, next ${serves(held.next, r.next)}${held.pendingRecovery ? `, RECOVERY PENDING to ${held.pendingRecovery.openpgp} effective ${isoSecond(held.pendingRecovery.effective)}` : ''}`
        : `directory ${url}: holds no record of ${r.domain}`);
    } catch (e) {
      const err = asMailmeshError(e);
      lines.push(`directory ${url}: unreachable (${err.code}: ${err.message})`);
    }
  }
  const seen = parseSeen(await c.directory.store.kvGet(seenKey(r.domain)));
  for (const [peer, s] of Object.entries(seen).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`peer      ${peer}: openpgp ${whichKey(r, secrets?.retained, s.openpgp, 'openpgp')}, smime ${whichKey(r, secrets?.retained, s.smime, 'smime')}, at ${isoSecond(s.at)}`);
  }
  return { text: lines.join('\n'), exitCode: EXIT.OK };
}
