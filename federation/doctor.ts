import { createHash } from 'node:crypto';
import { txtRecordLine } from '../directory/dane.js';
import { parseDomain, type Domain } from '../directory/domain.js';
import { asMailmeshError } from '../directory/errors.js';
import { readOpenPgpKey } from '../directory/openpgp.js';
import type { DomainRecord } from '../directory/record.js';
import { verifySigned, type VerifiedKeys } from '../directory/signed.js';
import { wkdHash } from '../directory/wkd.js';
import type { DirectoryRef } from './discovery.js';
import { stubResolver } from './dns.js';
import { fetchFromLdap } from './ldapimport.js';
import { pinMatches, pinProves, type Pin } from './pin.js';
import type { PinStore, PinViolation } from './pins.js';
import { readPins, type DomainSources } from './proof.js';
import { getBytes, getJson } from './web.js';

/** `mailmesh doctor <domain>`: what a peer would see, one row per check, with the fix for each failure. */
export interface DoctorRow {
  check: string;
  /** warn: works today, needs action soon (a key expiring, a recovery pending); exit 0. */
  result: 'pass' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}

export interface DoctorOptions {
  sources: DomainSources;
  directories: DirectoryRef[];
  /** The domain's record in the local store, when it is one of ours: the keys we expect peers to see. */
  local?: DomainRecord;
  pins?: PinStore;
  /** LDAP URLs (ldap://host:port/base) to check too. */
  ldap?: string[];
  /** Warn when a key expires within this many days (default 30); an expired key fails. */
  expiryDays?: number;
}

/** Newest first by the signed `issued`: a directory behind a roll holds an older record. */
interface Served {
  base: string;
  keys: VerifiedKeys;
  next?: VerifiedKeys;
  issued: string;
}

const fpr = (k: VerifiedKeys) => [k.openpgp && `pgp=${k.openpgp.fingerprint}`, k.smime && `smime=${k.smime.fingerprint}`].filter(Boolean).join(' ') || 'no keys';

export async function doctor(input: string, o: DoctorOptions): Promise<DoctorRow[]> {
  const domain: Domain = parseDomain(input);
  const rows: DoctorRow[] = [];
  const now = o.sources.clock();
  // The keys peers should see: ours when the domain is local, else the newest signed record of
  // the directories (never an older one: after a roll that would send the domain back to its old key).
  const served = o.local ? [] : await newestRecords(domain, o);
  let expected: VerifiedKeys | undefined = o.local?.keys ?? served[0]?.keys;
  // During a roll the announced next keys are right too.
  const expectedNext: VerifiedKeys | undefined = o.local ? o.local.next : served[0]?.next;
  const either = (p: Pin) => pinMatches(p, expected!) || (!!expectedNext && pinMatches(p, expectedNext));
  const keysOk = (k: VerifiedKeys) => either({ pgp: k.openpgp?.fingerprint, smime: k.smime?.fingerprint });
  const dirUrl = o.directories[0]?.url ?? '<directory URL>';
  const txtFix = (k: VerifiedKeys | undefined) =>
    k ? `publish in the domain's DNS: ${txtRecordLine({ domain, keys: k } as DomainRecord, dirUrl)}` : `publish _mailmesh.${domain} TXT "v=mm1; pgp=<fingerprint>; …"`;
  const pending: ({ base: string } & NonNullable<DomainRecord['pendingRecovery']>)[] = [];
  const row = async (check: string, f: () => Promise<Omit<DoctorRow, 'check'>>) => {
    try {
      rows.push({ check, ...(await f()) });
    } catch (e) {
      const err = asMailmeshError(e);
      rows.push({ check, result: 'fail', detail: `${err.code}: ${err.message}`, fix: 'see the error code in docs/federation.md "Errors"' });
    }
  };

  // What the directories say (REST first: it carries the signed record and thus the expected keys when not local).
  for (const d of o.directories) {
    const base = d.url.replace(/\/+$/, '');
    await row(`REST record at ${base}`, async () => {
      const body = (await getJson(`${base}/v1/domains/${domain}`, { fetch: o.sources.fetch, timeoutMs: o.sources.timeoutMs })) as DomainRecord | undefined;
      if (!body) return { result: 'fail', detail: 'not a member of this directory', fix: `mailmesh join ${base}` };
      const v = await verifySigned(body.signed, now);
      expected ??= v.keys;
      if (body.pendingRecovery) pending.push({ base, ...body.pendingRecovery });
      if (!keysOk(v.keys)) {
        const fix = o.local
          ? `post the current record to it again: mailmesh join ${base} (mailmesh domain roll ${domain} --status shows which directories have the current key)`
          : `the domain's newest record is elsewhere: ${domain} should post it to this directory again (mailmesh join ${base})`;
        return { result: 'fail', detail: `serves ${fpr(v.keys)}, expected ${fpr(expected)}${expectedNext ? ` or the announced next ${fpr(expectedNext)}` : ''}`, fix };
      }
      if (body.status !== 'active') return { result: 'fail', detail: `status ${body.status}: the proof of domain control failed on re-check`, fix: txtFix(expected) };
      const roll = v.next ? `; announces next ${fpr(v.next)}` : expectedNext && pinMatches({ pgp: expectedNext.openpgp?.fingerprint, smime: expectedNext.smime?.fingerprint }, v.keys) ? ' (the announced next keys)' : '';
      return { result: 'pass', detail: `signed record, ${fpr(v.keys)}${roll}` };
    });
    if (d.zone) {
      const zone = d.zone;
      await row(`DNS ${domain}.${zone}`, async () => {
        const s = d.nameservers?.length ? { ...o.sources, resolver: stubResolver(d.nameservers, { timeoutMs: o.sources.timeoutMs }) } : o.sources;
        const { pins } = await readPins(s, domain, `${domain}.${zone}`);
        if (!pins.length) return { result: 'fail', detail: `no TXT at ${domain}.${zone}`, fix: `mailmesh join ${base}; the directory's DNS face publishes members in ${zone}` };
        if (expected && !pins.some(either)) return { result: 'fail', detail: `TXT pins another key than ${fpr(expected)}`, fix: `mailmesh join ${base}` };
        return { result: 'pass', detail: `TXT pins ${pins.map((p) => p.pgp ?? p.smime).join(', ')}` };
      });
    }
    await row(`WKD at ${base}`, async () => {
      const url = `${base}/.well-known/openpgpkey/${domain}/hu/${wkdHash('domainkey')}?l=domainkey`;
      const bytes = await getBytes(url, { fetch: o.sources.fetch, timeoutMs: o.sources.timeoutMs });
      if (!bytes) return { result: 'fail', detail: 'no key', fix: `mailmesh join ${base}` };
      const got = (await readOpenPgpKey(bytes)).getFingerprint().toUpperCase();
      if (expected?.openpgp && got !== expected.openpgp.fingerprint && got !== expectedNext?.openpgp?.fingerprint) return { result: 'fail', detail: `serves ${got}`, fix: `mailmesh join ${base}` };
      return { result: 'pass', detail: `key ${got}` };
    });
  }

  await row(`_mailmesh.${domain} TXT`, async () => {
    const { pins, broken } = await readPins(o.sources, domain);
    if (broken.length) return { result: 'fail', detail: broken.join('; '), fix: txtFix(expected) };
    if (!pins.length) return { result: 'fail', detail: 'no v=mm1 TXT record', fix: txtFix(expected) };
    if (expected && !pins.some(either)) {
      // The proof holds (federation/pin.ts pinProves); only readers of SMIMEA by this pin see an old leaf.
      if (pins.some((p) => pinProves(p, expected!))) return { result: 'warn', detail: `pins pgp=${expected.openpgp?.fingerprint} but an earlier S/MIME leaf (smime=); the proof of control holds`, fix: txtFix(expected) };
      return { result: 'fail', detail: `pins another key than ${fpr(expected)}`, fix: txtFix(expected) };
    }
    return { result: 'pass', detail: `pins ${pins.map((p) => [p.pgp, p.smime].filter(Boolean).join(' ')).join(', ')}` };
  });

  for (const url of o.ldap ?? []) {
    await row(`LDAP ${url}`, async () => {
      const { certificates } = await fetchFromLdap(url, domain);
      if (!certificates.length) return { result: 'fail', detail: `no userCertificate for domainkey@${domain}`, fix: 'check the LDAP face base DN and that the domain is a member' };
      // The smime= pin: SHA-256 of the certificate DER.
      const got = certificates.map((der) => createHash('sha256').update(der).digest('hex'));
      if (expected?.smime && !got.includes(expected.smime.fingerprint) && !(expectedNext?.smime && got.includes(expectedNext.smime.fingerprint))) return { result: 'fail', detail: `certificates ${got.join(', ')}`, fix: 'the LDAP directory holds an old certificate' };
      return { result: 'pass', detail: `certificate ${got[0]}` };
    });
  }

  // A key recovery held down by a directory (docs/lifecycle.md "Recover"): it takes effect unless vetoed.
  for (const p of pending) {
    rows.push({
      check: `recovery at ${p.base}`,
      result: 'warn',
      detail: `a key recovery is pending: new key pgp=${p.openpgp}${p.smime ? ` smime=${p.smime}` : ''} since ${p.since}, effective ${p.effective} unless vetoed`,
      fix: o.local
        ? `if ${domain} did not start it, veto it with the current key before ${p.effective}: mailmesh domain veto ${domain}`
        : `ask ${domain} whether it lost its key; if not, its holder vetoes with mailmesh domain veto ${domain}`,
    });
  }

  await row('key validity', async () => keyValidity(domain, expected, expectedNext, now, o.expiryDays ?? 30));
  const pins = o.pins;
  if (pins) await row('pin violations', async () => pinViolations(domain, (await pins.get(domain))?.violations ?? []));
  return rows;
}

/** The `key validity` row: the expected keys' ends, a warning within `days`, a failure past them. */
function keyValidity(domain: Domain, expected: VerifiedKeys | undefined, expectedNext: VerifiedKeys | undefined, now: Date, days: number): Omit<DoctorRow, 'check'> {
  if (!expected) return { result: 'skip', detail: 'no keys found to check' };
  const soon = now.getTime() + days * 86400_000;
  const ends = [expected.openpgp?.expires && ['OpenPGP key', expected.openpgp.expires], expected.smime && ['S/MIME certificate', expected.smime.notAfter]].filter(
    (x): x is [string, string] => !!x,
  );
  const late = ends.filter(([, at]) => Date.parse(at) <= soon);
  if (!late.length) return { result: 'pass', detail: ends.length ? ends.map(([w, at]) => `${w} until ${at.slice(0, 10)}`).join('; ') : 'no expiry' };
  const expired = late.some(([, at]) => Date.parse(at) <= now.getTime());
  const what = late.map(([w, at]) => `${w} ${Date.parse(at) <= now.getTime() ? 'expired' : 'expires'} ${at}`).join('; ');
  const onlySmime = late.every(([w]) => w.startsWith('S/MIME'));
  const fix = expectedNext
    ? `the next keys are announced: finish the roll, mailmesh domain roll ${domain} --finish`
    : onlySmime
      ? `renew the S/MIME certificate: mailmesh domain renew ${domain} (or roll every key: mailmesh domain roll ${domain})`
      : `roll the domain key over: mailmesh domain roll ${domain}`;
  return { result: expired ? 'fail' : 'warn', detail: what, fix };
}

/** The `pin violations` row: the key changes the pin refused, the last one named. */
function pinViolations(domain: Domain, v: PinViolation[]): Omit<DoctorRow, 'check'> {
  if (!v.length) return { result: 'pass', detail: 'none recorded' };
  const last = v[v.length - 1]!;
  const detail = `${v.length} refused key change(s); last ${last.at}: ${last.source} offered ${last.offered}${last.revoked ? ' (revoked)' : ''}, pinned ${last.pinned}`;
  if (last.revoked) return { result: 'fail', detail, fix: `a source still serves a key ${domain} revoked (never used): tell its operator; mailmesh pins show ${domain} lists them` };
  return { result: 'fail', detail, fix: `see them with mailmesh pins show ${domain}; ask ${domain} whether it changed its key: if it did, mailmesh pins accept ${domain} takes the offered key, or mailmesh pins forget ${domain} pins afresh at the next lookup` };
}

/** The signed records the directories serve, newest `issued` first (unreachable or invalid ones left out: their rows say why). */
async function newestRecords(domain: Domain, o: DoctorOptions): Promise<Served[]> {
  const out: Served[] = [];
  for (const d of o.directories) {
    const base = d.url.replace(/\/+$/, '');
    try {
      const body = (await getJson(`${base}/v1/domains/${domain}`, { fetch: o.sources.fetch, timeoutMs: o.sources.timeoutMs })) as DomainRecord | undefined;
      if (!body?.signed) continue;
      const v = await verifySigned(body.signed, o.sources.clock());
      out.push({ base, keys: v.keys, ...(v.next ? { next: v.next } : {}), issued: v.payload.issued });
    } catch {
      // the directory's own row reports it
    }
  }
  return out.sort((a, b) => Date.parse(b.issued) - Date.parse(a.issued));
}
