import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../cli/exit.js';
import t, { type Test } from 'tap';
import { PIN_LABEL, pinText } from '../../directory/dane.js';
import { txtRdata, TYPE } from '../../directory/dnswire.js';
import type { DomainRecord } from '../../directory/record.js';
import { openStore } from '../../directory/store/open.js';
import { kdig } from '../directory/dns/helpers.js';
import { startZone } from '../federation/helpers.js';
import { run, tempDir } from '../helpers.js';
import { cli, startServe } from './helpers.js';

// Every command is a process of its own that may generate RSA-3072 keys: on a busy machine this file takes minutes.
t.setTimeout(900_000);

const portOf = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
const show = async (cwd: string, domain: string, env: Record<string, string> = {}) => JSON.parse((await cli(cwd, ['domain', 'show', domain, '--json'], env)).stdout.toString()) as DomainRecord;
const second = (iso: string | null | undefined) => (iso ? new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

t.test('domain export --what smime: one PEM block per certificate, as openssl reads it; domain list shows each key\'s expiry', async (t) => {
  const cwd = tempDir(t);
  t.equal((await cli(cwd, ['domain', 'add', 'example.org'])).code, 0);
  const out = join(cwd, 'chain.pem');
  t.equal((await cli(cwd, ['domain', 'export', 'example.org', '--what', 'smime', '--out', out])).code, 0);
  t.notMatch(readFileSync(out, 'utf8'), /-----END CERTIFICATE----------BEGIN/, 'no two blocks on one line');
  // openssl reads every certificate of the file (of the one-line form it found none: "Total found: 0", a non-zero exit).
  const store = await run('openssl', ['storeutl', '-noout', '-certs', out], { allowFail: true });
  t.equal(store.code, 0, store.stderr);
  t.match(store.stdout.toString(), /Total found: 2/);
  const p7 = await run('openssl', ['crl2pkcs7', '-nocrl', '-certfile', out], { allowFail: true });
  t.equal(p7.code, 0, p7.stderr);

  const r = await show(cwd, 'example.org');
  const ca = (await run('openssl', ['x509', '-noout', '-enddate'], { input: r.keys.smime!.chain[1] })).stdout.toString();
  const caEnd = new Date(/notAfter=(.*)/.exec(ca)![1]!).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const line = (await cli(cwd, ['domain', 'list'])).stdout.toString().trim().split('\t');
  t.same(line.slice(5), [second(r.keys.openpgp!.expires), second(r.keys.smime!.notAfter), caEnd], 'expiry of the OpenPGP key, the leaf and the domain CA');
  t.ok(Date.parse(caEnd) > Date.parse(r.keys.smime!.notAfter), 'the CA outlives the leaf');
});

t.test('a CLI change on SQLite reaches a running serve\'s DNS face (and its expiry gauge) within 2 s', async (t) => {
  const cwd = tempDir(t);
  const s = await startServe(t, cwd, { MAILMESH_DEMO__DOMAIN: '', MAILMESH_SMTP__ENABLED: 'false', MAILMESH_LDAP__ENABLED: 'false' });
  const dns = portOf(s.addresses.dns);
  const owner = 'x.test.dir.mailmesh.test';
  const txt = async () => (await kdig(dns, [owner, 'TXT'])).answers;
  t.same(await txt(), [], 'not there before');

  /** Queries the DNS face until `done` holds; the milliseconds from `since` to the first answer that did. */
  const until = async (done: (answers: string[]) => boolean, since: number) => {
    for (;;) {
      const a = await txt();
      if (done(a)) return { ms: performance.now() - since, answers: a };
      if (performance.now() - since > 10_000) return { ms: Infinity, answers: a };
    }
  };

  const add = await cli(cwd, ['domain', 'add', 'x.test']);
  const added = performance.now();
  t.equal(add.code, 0, add.stderr);
  const seen = await until((a) => a.length > 0, added);
  t.ok(seen.ms <= 2000, `domain add: the TXT answered ${Math.round(seen.ms)} ms after the CLI exited`);
  const r = await show(cwd, 'x.test');
  t.match(seen.answers.join('\n'), `pgp=${r.keys.openpgp!.fingerprint}`);

  const metrics = (await run('curl', ['-sf', `http://${s.addresses.http}/metrics`])).stdout.toString();
  t.match(metrics, new RegExp(`^mailmesh_key_not_after_timestamp_seconds\\{domain="x\\.test",kind="openpgp"\\} ${Math.floor(Date.parse(r.keys.openpgp!.expires!) / 1000)}$`, 'm'));
  t.match(metrics, new RegExp(`^mailmesh_key_not_after_timestamp_seconds\\{domain="x\\.test",kind="smime"\\} ${Math.floor(Date.parse(r.keys.smime!.notAfter) / 1000)}$`, 'm'));
  t.match(metrics, /^mailmesh_key_not_after_timestamp_seconds\{domain="x\.test",kind="smime-ca"\} \d+$/m);

  const remove = await cli(cwd, ['domain', 'remove', 'x.test']);
  const removed = performance.now();
  t.equal(remove.code, 0, remove.stderr);
  const gone = await until((a) => a.length === 0, removed);
  t.ok(gone.ms <= 2000, `domain remove: the TXT was gone ${Math.round(gone.ms)} ms after the CLI exited`);
  t.notMatch((await run('curl', ['-sf', `http://${s.addresses.http}/metrics`])).stdout.toString(), 'domain="x.test"', 'the gauge forgets a removed domain');
});

/**
 * A federation on loopback: the member's own DNS (a test zone for its `_mailmesh` TXT) and a
 * directory (`serve` with joins) that checks it; `member()` is a node of alpha.test (CLI on its
 * own store) configured with both.
 */
async function federation(t: Test) {
  const zone = await startZone(t);
  const resolvers = `127.0.0.1:${zone.port}`;
  const dir = await startServe(t, tempDir(t), {
    MAILMESH_DEMO__DOMAIN: '', MAILMESH_SMTP__ENABLED: 'false', MAILMESH_LDAP__ENABLED: 'false', MAILMESH_DNS__ENABLED: 'false',
    MAILMESH_FEDERATION__RESOLVERS: resolvers, MAILMESH_FEDERATION__JOIN__ALLOW_PRIVATE_ADDRESSES: 'true', MAILMESH_FEDERATION__WELL_KNOWN_BASE: 'http://127.0.0.1:1/{domain}',
  });
  const url = `http://${dir.addresses.http}`;
  const held = async () => JSON.parse((await run('curl', ['-sf', `${url}/v1/domains/alpha.test`])).stdout.toString()) as DomainRecord;
  const pin = (...records: DomainRecord['keys'][]) =>
    zone.set(`${PIN_LABEL}.alpha.test`, TYPE.TXT, records.map((keys) => txtRdata(pinText({ domain: 'alpha.test', keys } as DomainRecord, url))));
  const member = () => {
    const cwd = tempDir(t);
    // The HTTP face this node would serve the CRL on (it does not listen here): named in new leaves.
    const env = { MAILMESH_MASTER_KEY: randomBytes(32).toString('base64'), MAILMESH_HTTP__PORT: '8080', MAILMESH_FEDERATION__RESOLVERS: resolvers, MAILMESH_FEDERATION__DIRECTORIES: JSON.stringify([{ url }]) };
    return { cwd, env, run: (args: string[]) => cli(cwd, args, env), show: () => show(cwd, 'alpha.test', env) };
  };
  return { url, held, pin, member };
}

t.test('roll, status, finish, renew, revoke from the CLI: posted to the directory, held back by the _mailmesh TXT', async (t) => {
  const { url, held, pin, member } = await federation(t);
  const { cwd, env, run: run1 } = member();

  t.equal((await run1(['domain', 'add', 'alpha.test'])).code, 0);
  const first = await show(cwd, 'alpha.test', env);
  pin(first.keys);
  const joined = await run1(['join', url, '--domain', 'alpha.test']);
  t.equal(joined.code, 0, joined.stdout.toString() + joined.stderr);

  // Announce: the next keys in the signed record, posted to the directory, and the TXT line to add.
  const roll = await run1(['domain', 'roll', 'alpha.test', '--overlap', '3']);
  t.equal(roll.code, 0, roll.stderr);
  const announced = await show(cwd, 'alpha.test', env);
  t.ok(announced.next?.openpgp && announced.next.openpgp.fingerprint !== first.keys.openpgp!.fingerprint, 'next keys announced');
  t.equal(Date.parse(announced.rollover!.switchAfter) - Date.parse(announced.rollover!.announced), 3 * 86_400_000, '--overlap 3');
  t.match(roll.stdout.toString(), `directory ${url}: ok`);
  t.match(roll.stdout.toString(), `_mailmesh.alpha.test. 300 IN TXT "v=mm1; pgp=${announced.next!.openpgp!.fingerprint}`);
  t.equal((await held()).next?.openpgp?.fingerprint, announced.next!.openpgp!.fingerprint, 'the directory serves the next key');

  // Status: phase, directories, and the peers the gateway saw (store kv, as gateway/ writes it).
  const store = await openStore(`sqlite:${join(cwd, 'data', 'mailmesh.db')}`, { redisPrefix: '' });
  await store.kvPut('lifecycle:seen:alpha.test', JSON.stringify({ 'beta.test': { openpgp: announced.next!.openpgp!.fingerprint, at: '2026-12-01T00:00:00.000Z' }, 'gamma.test': { openpgp: first.keys.openpgp!.fingerprint, at: '2026-11-30T00:00:00.000Z' } }));
  await store.close();
  const status = (await run1(['domain', 'roll', 'alpha.test', '--status'])).stdout.toString();
  t.match(status, `phase     announced ${second(announced.rollover!.announced)}, switch after ${second(announced.rollover!.switchAfter)}`);
  t.match(status, `directory ${url}: current yes, next yes`);
  t.match(status, `peer      beta.test: openpgp ${announced.next!.openpgp!.fingerprint} (next)`);
  t.match(status, `peer      gamma.test: openpgp ${first.keys.openpgp!.fingerprint} (current)`);

  // Finish: not before the overlap, not before the TXT names the next keys.
  const early = await run1(['domain', 'roll', 'alpha.test', '--finish']);
  t.equal(early.code, EXIT.TEMPFAIL);
  t.match(early.stderr, 'ROLL_TOO_EARLY');
  const unproved = await run1(['domain', 'roll', 'alpha.test', '--finish', '--now']);
  t.equal(unproved.code, EXIT.TEMPFAIL);
  t.match(unproved.stderr, 'ROLL_PROOF_MISSING');
  t.equal((await show(cwd, 'alpha.test', env)).keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint, 'nothing switched');
  pin(first.keys, announced.next!);
  const finish = await run1(['domain', 'roll', 'alpha.test', '--finish', '--now']);
  t.equal(finish.code, 0, finish.stderr);
  t.match(finish.stdout.toString(), `directory ${url}: ok`);
  const switched = await show(cwd, 'alpha.test', env);
  t.equal(switched.keys.openpgp!.fingerprint, announced.next!.openpgp!.fingerprint);
  t.notOk(switched.next || switched.rollover, 'steady again');
  t.equal((await held()).keys.openpgp!.fingerprint, switched.keys.openpgp!.fingerprint, 'the directory switched too');
  const after = (await run1(['domain', 'roll', 'alpha.test', '--status'])).stdout.toString();
  t.match(after, 'phase     steady');
  t.match(after, new RegExp(`retained  openpgp ${first.keys.openpgp!.fingerprint} .*kept until `));
  t.match(after, `peer      gamma.test: openpgp ${first.keys.openpgp!.fingerprint} (retained)`);
  pin(switched.keys);

  // Renew: a new leaf; the directory takes it though the TXT names the old leaf (its pgp= signs the record).
  const renew = await run1(['domain', 'renew', 'alpha.test']);
  t.equal(renew.code, 0, renew.stderr);
  const renewed = await show(cwd, 'alpha.test', env);
  t.not(renewed.keys.smime!.fingerprint, switched.keys.smime!.fingerprint, 'a new leaf');
  t.equal(renewed.keys.openpgp!.fingerprint, switched.keys.openpgp!.fingerprint, 'the same OpenPGP key');
  t.match(renew.stdout.toString(), new RegExp(`directory ${url}: ok`));
  pin(renewed.keys);
  t.equal((await held()).keys.smime!.fingerprint, renewed.keys.smime!.fingerprint);

  // Revoke: new keys at once; the directory takes them (the old key revoked by itself) once the TXT names them.
  const revoke = await run1(['domain', 'revoke', 'alpha.test']);
  t.equal(revoke.code, 0, revoke.stderr);
  const fresh = await show(cwd, 'alpha.test', env);
  t.not(fresh.keys.openpgp!.fingerprint, renewed.keys.openpgp!.fingerprint, 'new OpenPGP key');
  t.ok(fresh.crls?.length, 'the record carries the domain CA\'s CRL');
  const dp = await run('openssl', ['x509', '-noout', '-ext', 'crlDistributionPoints'], { input: fresh.keys.smime!.chain[0] });
  t.match(dp.stdout.toString(), /URI:http:\/\/127\.0\.0\.1:8080\/v1\/domains\/alpha\.test\/crl\/[0-9a-f]{40}\s/, 'the new leaf names its CA\'s CRL on this node\'s HTTP face');
  pin(fresh.keys);
  const rejoin = await run1(['join', url, '--domain', 'alpha.test']);
  t.equal(rejoin.code, 0, rejoin.stdout.toString() + rejoin.stderr);
  t.equal((await held()).keys.openpgp!.fingerprint, fresh.keys.openpgp!.fingerprint, 'the directory serves the new key');
});

t.test('recover after a lost key: refused without the TXT, held down with it, vetoed by the holder of the old key', async (t) => {
  const { url, held, pin, member } = await federation(t);
  const old = member();
  t.equal((await old.run(['domain', 'add', 'alpha.test'])).code, 0);
  const first = await old.show();
  pin(first.keys);
  t.equal((await old.run(['join', url, '--domain', 'alpha.test'])).code, 0);

  // A new node, without the old keys: fresh keys, and the TXT line to publish.
  const fresh = member();
  const before = await fresh.run(['domain', 'recover', 'alpha.test']);
  t.equal(before.code, 0, before.stderr);
  const recovered = await fresh.show();
  t.not(recovered.keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint, 'new keys');
  t.match(before.stdout.toString(), `_mailmesh.alpha.test. 300 IN TXT "v=mm1; pgp=${recovered.keys.openpgp!.fingerprint}`);
  t.match(before.stdout.toString(), new RegExp(`directory ${url}: failed \\(DOMAIN_HELD: .*hold-down`), 'no proof yet: DOMAIN_HELD names the recovery path');

  pin(recovered.keys);
  const again = await fresh.run(['domain', 'recover', 'alpha.test']);
  t.equal((await fresh.show()).keys.openpgp!.fingerprint, recovered.keys.openpgp!.fingerprint, 'the keys made before are posted, not new ones');
  const until = new RegExp(`directory ${url}: held down until (\\S+)`).exec(again.stdout.toString());
  t.ok(until, 'the end of the hold-down is printed');
  const h = await held();
  t.equal(h.keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint, 'the directory still serves the old key');
  t.equal(h.pendingRecovery?.openpgp, recovered.keys.openpgp!.fingerprint);
  t.equal(until![1], second(h.pendingRecovery!.effective), 'the end of the hold-down as the directory says');
  t.ok(Date.parse(h.pendingRecovery!.effective) - Date.parse(h.pendingRecovery!.since) === 72 * 3600_000, 'federation.recoveryHoldSec: 72 h');

  // The holder of the old key sees it and vetoes.
  t.match((await old.run(['domain', 'roll', 'alpha.test', '--status'])).stdout.toString(), `RECOVERY PENDING to ${recovered.keys.openpgp!.fingerprint}`);
  const veto = await old.run(['domain', 'veto', 'alpha.test']);
  t.equal(veto.code, 0, veto.stdout.toString() + veto.stderr);
  t.match(veto.stdout.toString(), `directory ${url}: vetoed the recovery to ${recovered.keys.openpgp!.fingerprint}`);
  t.notOk((await held()).pendingRecovery, 'nothing pending');
  t.match((await fresh.run(['domain', 'recover', 'alpha.test'])).stdout.toString(), `directory ${url}: failed (RECOVERY_VETOED`);
  t.match((await old.run(['domain', 'veto', 'alpha.test'])).stdout.toString(), `directory ${url}: no recovery pending`);
});
