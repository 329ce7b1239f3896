import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { run, tempDir } from '../../helpers.js';
import { domainLog, newSigner, serveLog } from './staticlog.js';

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
