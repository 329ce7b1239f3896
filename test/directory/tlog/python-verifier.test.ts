import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Directory } from '../../../directory/directory.js';
import { MemoryStore } from '../../../directory/store/memory.js';
import { LOG_KEY_META } from '../../../directory/tlog/log.js';
import { run, tempDir } from '../../helpers.js';
import { startHttp } from '../http/helpers.js';
import { domainLog, lyingProxy, newSigner, serveLog } from './staticlog.js';

/**
 * The independent verifier (verify.py, Python, written from RFC 9162 and the C2SP specifications
 * alone) against our log as served over HTTP: it must accept what we serve, and refuse, naming the
 * reason, what a lying or broken directory serves.
 */
const HERE = new URL('.', import.meta.url).pathname;
const VERIFY = join(HERE, 'verify.py');

async function verify(args: string[]) {
  const r = await run('python3', [VERIFY, ...args], { allowFail: true });
  return { code: r.code, out: r.stdout.toString(), err: r.stderr };
}

t.test('verify.py checks itself against the specifications\' vectors', async (t) => {
  const r = await run('python3', [join(HERE, 'verify_vectors.py')], { allowFail: true });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /self-test passed/);
});

t.test('verify.py against a log built with directory/tlog and served from memory', async (t) => {
  const { signer, vkey } = newSigner();
  const log = await domainLog(300); // a full level-0 tile, a partial one of 44, a partial level-1 tile of 1
  const old = await log.checkpoint(signer, 100);
  const srv = await serveLog(t, log, signer, vkey, { olderSizes: [100] });
  const dir = tempDir(t);
  const oldFile = join(dir, 'old.checkpoint');
  writeFileSync(oldFile, old);

  const ok = await verify(['--url', srv.url, '--vkey', vkey, '--domain', 'd5.test', '--domain', 'd299.test', '--since', oldFile]);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /checkpoint 300 [0-9a-f]{64} verified/);
  t.match(ok.out, /d299\.test: leaf 299 included in the tree of 300/);
  t.match(ok.out, /the tree of 100 is a prefix of the tree of 300/);

  t.test('a vkey of another key under the same name', async (t) => {
    const r = await verify(['--url', srv.url, '--vkey', newSigner().vkey]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL SIGNATURE: no signature by static\.example\/log/);
  });
  t.test('the proof of another domain for d5.test', async (t) => {
    srv.faults.swapProof = ['d5.test', 'd6.test'];
    t.teardown(() => void delete srv.faults.swapProof);
    const r = await verify(['--url', srv.url, '--vkey', vkey, '--domain', 'd5.test']);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL DOMAIN_MISMATCH: leaf 6 is a record of 'd6\.test', not 'd5\.test'/);
  });
  t.test('an old checkpoint of another tree (not a prefix), signed by the same key', async (t) => {
    const fork = await domainLog(99);
    await fork.append(Buffer.from('{"payload":"{\\"domain\\":\\"evil.test\\"}"}'));
    const forkFile = join(dir, 'fork.checkpoint');
    writeFileSync(forkFile, await fork.checkpoint(signer));
    const r = await verify(['--url', srv.url, '--vkey', vkey, '--since', forkFile]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL CONSISTENCY: the tree of 100 is not a prefix of the tree of 300/);
  });
  t.test('a bundle whose entry was changed', async (t) => {
    srv.faults.entry = 280;
    t.teardown(() => void delete srv.faults.entry);
    const r = await verify(['--url', srv.url, '--vkey', vkey]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL ENTRY_MISMATCH: entry 280/);
  });
  t.test('a checkpoint whose root is not the tiles\'', async (t) => {
    const other = await domainLog(299);
    await other.append(Buffer.from('other'));
    srv.faults.checkpoint = await other.checkpoint(signer);
    t.teardown(() => void delete srv.faults.checkpoint);
    const r = await verify(['--url', srv.url, '--vkey', vkey]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL ROOT_MISMATCH/);
  });
});

t.test('verify.py against a real directory over HTTP: joins, rolls, a revocation, past a tile boundary', async (t) => {
  const masterKey = randomBytes(32);
  const open = (store: MemoryStore) => Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 365 }, log: { origin: 'dir.mailmesh.test/log' } });
  const directory = await open(new MemoryStore());
  const { base } = await startHttp(t, directory);
  await directory.addDomain('a.mailmesh.test');
  await directory.addDomain('b.mailmesh.test');
  const vkey = await directory.log!.verifierKey();
  const dir = tempDir(t);
  const early = join(dir, 'early.checkpoint');
  writeFileSync(early, (await directory.log!.checkpoint()).note);
  await directory.announceRoll('a.mailmesh.test');
  await directory.finishRoll('a.mailmesh.test', { now: true });
  await directory.revokeKeys('b.mailmesh.test', 'superseded');
  await directory.addDomain('c.mailmesh.test');
  // Past the first tile (256 entries) by appending to the store's log directly.
  for (let i = await directory.log!.size(); i < 270; i++) await directory.store.appendLogEntry(Buffer.from(`filler ${i}`));
  await directory.addDomain('d.mailmesh.test');

  const ok = await verify(['--url', base, '--vkey', vkey, '--since', early, ...['a', 'b', 'c', 'd'].flatMap((d) => ['--domain', `${d}.mailmesh.test`])]);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /checkpoint 271 [0-9a-f]{64} verified/);
  t.match(ok.out, /a\.mailmesh\.test: leaf 3 included/, 'the rolled record is the latest version of a');
  t.match(ok.out, /d\.mailmesh\.test: leaf 270 included in the tree of 271/);
  t.match(ok.out, /the tree of 2 is a prefix of the tree of 271/);

  t.test('a vkey that is not the log\'s', async (t) => {
    const r = await verify(['--url', base, '--vkey', newSigner('dir.mailmesh.test/log').vkey]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL SIGNATURE: no signature by dir\.mailmesh\.test\/log/);
  });
  t.test('the proof of another domain', async (t) => {
    const liar = await lyingProxy(t, base, 'c.mailmesh.test', 'b.mailmesh.test');
    const r = await verify(['--url', liar, '--vkey', vkey, '--domain', 'c.mailmesh.test']);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL DOMAIN_MISMATCH: leaf \d+ is a record of 'b\.mailmesh\.test', not 'c\.mailmesh\.test'/);
  });
  t.test('an old checkpoint of another history, signed by the same log key', async (t) => {
    // A second store with the same sealed log key (same master key): a fork of the log.
    const store = new MemoryStore();
    await store.setMetaIfAbsent(LOG_KEY_META, (await directory.store.getMeta(LOG_KEY_META))!);
    const fork = await open(store);
    await fork.addDomain('a.mailmesh.test');
    await fork.addDomain('evil.mailmesh.test');
    t.equal(await fork.log!.verifierKey(), vkey, 'the fork signs with the log\'s key');
    const forked = join(dir, 'fork.checkpoint');
    writeFileSync(forked, (await fork.log!.checkpoint()).note);
    const r = await verify(['--url', base, '--vkey', vkey, '--since', forked]);
    t.equal(r.code, 1);
    t.match(r.err, /FAIL CONSISTENCY: the tree of 2 is not a prefix of the tree of 271/);
  });
});
