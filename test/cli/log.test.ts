import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { logCheckpoint, logProof, logVerify } from '../../cli/logcommands.js';
import { EXIT } from '../../cli/exit.js';
import { TlogClient, verifyCheckpoint } from '../../federation/tlogclient.js';
import { memoryDirectory, rejectsCode, run, tempDir } from '../helpers.js';
import { domainLog, lyingProxy, newSigner, serveLog } from '../directory/tlog/staticlog.js';
import { startHttp } from '../directory/http/helpers.js';
import { cli, MAIN, startServe } from './helpers.js';

/**
 * `mailmesh log checkpoint|verify|proof` (cli/logcommands.ts) and its client
 * (federation/tlogclient.ts) against a log built with directory/tlog and served from memory:
 * success, and each lie named with exit 2.
 */
t.setTimeout(300_000);

t.test('log checkpoint pins the key on first use, verify and proof follow it', async (t) => {
  const { signer, vkey } = newSigner();
  const log = await domainLog(300);
  const srv = await serveLog(t, log, signer, vkey, { olderSizes: [120] });
  const dir = tempDir(t);
  const file = join(dir, 'pinned.json');

  // A saved checkpoint of 120 (as if saved when the log had 120 entries), pinning the vkey.
  writeFileSync(file, JSON.stringify({ directory: srv.url, vkey, checkpoint: await log.checkpoint(signer, 120) }));
  const verified = await logVerify({ directory: srv.url, since: file });
  t.equal(verified.exitCode, EXIT.OK, verified.text);
  t.match(verified.text, /consistent: the tree of 120 is a prefix of the tree of 300/);

  const first = join(dir, 'first.json');
  const c = await logCheckpoint({ directory: srv.url, save: first });
  t.equal(c.exitCode, EXIT.OK, c.text);
  t.match(c.text, /first use: trusting the log key the directory names/);
  t.match(c.text, /verified: origin static\.example\/log, size 300/);
  const saved = JSON.parse(readFileSync(first, 'utf8')) as { vkey: string; checkpoint: string };
  t.equal(saved.vkey, vkey, 'the key is pinned in the saved file');
  t.equal(saved.checkpoint, srv.checkpoint);
  const again = await logCheckpoint({ directory: srv.url, save: first });
  t.match(again.text, /consistent with the saved checkpoint of size 300/);
  t.notMatch(again.text, /first use/, 'the pinned key is used');

  const p = await logProof('d257.test', { directory: srv.url, since: file });
  t.equal(p.exitCode, EXIT.OK, p.text);
  t.match(p.text, /d257\.test: leaf 257 is included in the tree of 300/);

  t.test('a proof served for another domain is a violation', async (t) => {
    srv.faults.swapProof = ['d3.test', 'd4.test'];
    t.teardown(() => void delete srv.faults.swapProof);
    const r = await logProof('d3.test', { directory: srv.url, vkey });
    t.equal(r.exitCode, EXIT.VIOLATION);
    t.match(r.text, /VIOLATION TLOG_PROOF_FAILED: .*leaf 4 is a record of "d4\.test", not of d3\.test/);
  });
  t.test('a saved checkpoint the current tree does not extend is a violation', async (t) => {
    const fork = await domainLog(119);
    await fork.append(Buffer.from('{"payload":"{\\"domain\\":\\"evil.test\\"}"}'));
    const forked = join(dir, 'fork.json');
    writeFileSync(forked, JSON.stringify({ directory: srv.url, vkey, checkpoint: await fork.checkpoint(signer) }));
    const r = await logVerify({ directory: srv.url, since: forked });
    t.equal(r.exitCode, EXIT.VIOLATION);
    t.match(r.text, /VIOLATION TLOG_PROOF_FAILED: .*the tree of 120 is not a prefix of the tree of 300/);
  });
  t.test('a larger saved checkpoint is a rollback', async (t) => {
    const bigger = await domainLog(301);
    const ahead = join(dir, 'ahead.json');
    writeFileSync(ahead, JSON.stringify({ directory: srv.url, vkey, checkpoint: await bigger.checkpoint(signer) }));
    const r = await logVerify({ directory: srv.url, since: ahead });
    t.equal(r.exitCode, EXIT.VIOLATION);
    t.match(r.text, /rolled back/);
  });
  t.test('a checkpoint not signed by the pinned key is a violation', async (t) => {
    const r = await logCheckpoint({ directory: srv.url, vkey: newSigner().vkey });
    t.equal(r.exitCode, EXIT.VIOLATION);
    t.match(r.text, /VIOLATION TLOG_INVALID: .*static\.example\/log/);
  });
  t.test('an entry changed in its bundle is a violation', async (t) => {
    srv.faults.entry = 10;
    t.teardown(() => void delete srv.faults.entry);
    const r = await logProof('d10.test', { directory: srv.url, vkey });
    t.equal(r.exitCode, EXIT.VIOLATION);
    t.match(r.text, /entry 10: its leaf hash is not the level-0 tile's/);
  });
});

t.test('the client: tiles hash to the checkpoint, a vkey that disagrees with the pin is refused', async (t) => {
  const { signer, vkey } = newSigner();
  const log = await domainLog(256); // a full level-0 tile and a level-1 tile of width 1
  const srv = await serveLog(t, log, signer, vkey);
  const client = new TlogClient(srv.url);
  const c = await client.checkpoint(vkey);
  t.equal(c.checkpoint.size, 256);
  await client.checkTiles(c);
  t.same(await client.info(), { origin: signer.name, vkey, size: 256, checkpoint: srv.checkpoint });
  t.throws(() => verifyCheckpoint(srv.checkpoint, newSigner('other.example/log').vkey));
  const dir = tempDir(t);
  const file = join(dir, 'pinned.json');
  writeFileSync(file, JSON.stringify({ directory: srv.url, vkey, checkpoint: srv.checkpoint }));
  await t.rejects(logVerify({ directory: srv.url, since: file, vkey: newSigner().vkey }), { exitCode: EXIT.USAGE, message: /is not the key the saved checkpoint pinned/ });
  writeFileSync(file, 'not json');
  await rejectsCode(t, logVerify({ directory: srv.url, since: file }), 'TLOG_INVALID');
});

t.test('the built CLI: exit 0, and 2 with the reason on standard error', { skip: !existsSync(MAIN) && 'the CLI is not built (npm run build)' }, async (t) => {
  const { signer, vkey } = newSigner();
  const srv = await serveLog(t, await domainLog(3), signer, vkey);
  const dir = tempDir(t);
  const ok = await cli(dir, ['log', 'checkpoint', '--directory', srv.url, '--save', join(dir, 'c.json')]);
  t.equal(ok.code, EXIT.OK, ok.stderr);
  t.match(ok.stdout.toString(), /size 3/);
  const bad = await cli(dir, ['log', 'proof', 'd1.test', '--directory', srv.url, '--vkey', newSigner().vkey]);
  t.equal(bad.code, EXIT.VIOLATION);
  t.match(bad.stderr, /VIOLATION TLOG_INVALID/);
});

t.test('against a real directory: a record proves into the log, a lying front is a violation', async (t) => {
  const directory = await memoryDirectory(undefined, { log: { origin: 'dir.mailmesh.test/log' } });
  const { base } = await startHttp(t, directory);
  await directory.addDomain('a.mailmesh.test');
  const dir = tempDir(t);
  const file = join(dir, 'dir.json');
  const first = await logCheckpoint({ directory: base, save: file });
  t.equal(first.exitCode, EXIT.OK, first.text);
  await directory.addDomain('b.mailmesh.test');
  await directory.announceRoll('a.mailmesh.test');
  for (let i = await directory.log!.size(); i < 260; i++) await directory.store.appendLogEntry(Buffer.from(`filler ${i}`));
  await directory.finishRoll('a.mailmesh.test', { now: true });
  const v = await logVerify({ directory: base, since: file, save: true });
  t.equal(v.exitCode, EXIT.OK, v.text);
  t.match(v.text, /the tree of 1 is a prefix of the tree of 261/);
  const p = await logProof('a.mailmesh.test', { directory: base, since: file });
  t.equal(p.exitCode, EXIT.OK, p.text);
  t.match(p.text, /a\.mailmesh\.test: leaf 260 is included in the tree of 261/);
  const liar = await lyingProxy(t, base, 'b.mailmesh.test', 'a.mailmesh.test');
  const lie = await logProof('b.mailmesh.test', { directory: liar, since: file });
  t.equal(lie.exitCode, EXIT.VIOLATION);
  t.match(lie.text, /leaf 260 is a record of "a\.mailmesh\.test", not of b\.mailmesh\.test/);
});

t.test('the built CLI against `mailmesh serve`', { skip: !existsSync(MAIN) && 'the CLI is not built (npm run build)' }, async (t) => {
  const cwd = tempDir(t);
  const s = await startServe(t, cwd);
  const url = `http://${s.addresses.http}`;
  const c = await cli(cwd, ['log', 'checkpoint', '--directory', url, '--save', 'log.json']);
  t.equal(c.code, EXIT.OK, c.stderr);
  t.match(c.stdout.toString(), /first use: trusting the log key/);
  const p = await cli(cwd, ['log', 'proof', 'demo.mailmesh.test', '--directory', url, '--since', 'log.json']);
  t.equal(p.code, EXIT.OK, p.stderr);
  t.match(p.stdout.toString(), /demo\.mailmesh\.test: leaf 0 is included/);
  const v = await cli(cwd, ['log', 'verify', '--directory', url, '--since', 'log.json']);
  t.equal(v.code, EXIT.OK, v.stderr);
  const py = await run('python3', [new URL('../directory/tlog/verify.py', import.meta.url).pathname, '--url', url,
    '--vkey', (JSON.parse(readFileSync(join(cwd, 'log.json'), 'utf8')) as { vkey: string }).vkey, '--domain', 'demo.mailmesh.test', '--since', join(cwd, 'log.json')], { allowFail: true });
  t.equal(py.code, 0, `verify.py reads what the CLI saved: ${py.stderr}`);
});
