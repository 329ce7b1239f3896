import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { stubResolver } from '../../federation/dns.js';
import { Discovery } from '../../federation/discovery.js';
import { FilePinStore } from '../../federation/pins.js';
import { baseFor } from '../../federation/web.js';
import { run, tempDir } from '../helpers.js';
import { startZone } from './helpers.js';
import { keyset, record, startDirectory } from './lifecycle-helpers.js';

// Real processes and key generation: slow on a loaded 2-core machine; a hang still ends here.
t.setTimeout(600_000);

// `mailmesh pins` end to end through the built CLI (`npm run build` first), with the pins in the
// store and in the pins file; each command is a process of its own, as an administrator runs them
// (slow on a busy machine: the commands are few).
const zone = await startZone(t);
const dir = await startDirectory(t);
const real = () => new Date();
const pgp = (k: { openpgp?: { fingerprint: string } } | undefined) => k?.openpgp?.fingerprint;
const main = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const federation = { resolvers: [`127.0.0.1:${zone.port}`], directories: [{ url: dir.url }], wellKnownBase: 'http://127.0.0.1:1/{domain}' };

/** A configuration in a temporary directory, the CLI on it, and a domain whose key changes unannounced by `swap()`. */
async function setup(t: Test, domain: string, extra: Record<string, unknown> = {}) {
  const [k1, k3] = [await keyset(domain, real), await keyset(domain, real)];
  dir.records.set(domain, await record(k1, k1.keys, [k1], real()));
  const cwd = tempDir(t);
  writeFileSync(join(cwd, 'mailmesh.yaml'), stringify({ dataDir: join(cwd, 'data'), federation: { ...federation, ...extra } }));
  const mm = async (...args: string[]) => {
    const r = await run('node', [main, ...args], { cwd, env: { MAILMESH_CONFIG: join(cwd, 'mailmesh.yaml'), MAILMESH_LOG__LEVEL: 'silent' }, allowFail: true });
    return { code: r.code, out: r.stdout.toString(), err: r.stderr.toString() };
  };
  const swap = async () => dir.records.set(domain, await record(k3, k3.keys, [k3], real()));
  return { cwd, k1, k3, mm, swap };
}

t.test('pins in the store: lookup refuses the change, pins list|show, doctor names the commands, accept, forget', async (t) => {
  const domain = 'cli-store.test';
  const { k1, k3, mm, swap } = await setup(t, domain);
  t.equal((await mm('lookup', domain)).code, 0, 'pinned on first use');
  await swap();
  const refused = await mm('lookup', domain);
  t.equal(refused.code, 2, refused.out + refused.err); // EXIT.VIOLATION (cli/exit.ts)
  t.match(refused.out, `VIOLATION   directory-https ${dir.url} offered ${pgp(k3.keys)}; pinned ${pgp(k1.keys)} kept`);
  const list = await mm('pins', 'list');
  t.match(list.out, new RegExp(`^cli-store\\.test\\tpgp=${pgp(k1.keys)} .*\\tviolations=1$`, 'm'), list.out + list.err);
  t.match((await mm('pins', 'show', domain)).out, `offered ${pgp(k3.keys)}; pinned ${pgp(k1.keys)}`);
  t.match((await mm('doctor', domain)).out, `fix: see them with mailmesh pins show ${domain}`);
  const accept = await mm('pins', 'accept', domain);
  t.equal(accept.code, 0, accept.out + accept.err);
  const look = await mm('lookup', domain);
  t.equal(look.code, 0, look.out);
  t.match(look.out, new RegExp(`openpgp +${pgp(k3.keys)}`));
  const again = await mm('pins', 'accept', domain);
  t.equal(again.code, 1, 'nothing left to accept');
  t.match(again.err, 'NOT_FOUND');
  t.equal((await mm('pins', 'forget', domain)).code, 0);
  t.equal((await mm('pins', 'list')).out.trim(), 'no pins', 'forgotten');
});

t.test('pins in the pins file: the CLI settles a violation a running gateway recorded, and the gateway sees it', async (t) => {
  const domain = 'cli-file.test';
  const file = join(tempDir(t), 'pins.json');
  const { k1, k3, mm, swap } = await setup(t, domain, { pinsFile: file });
  // The running gateway's discovery, on the same pins file, in this process.
  const pins = new FilePinStore(file);
  const gateway = new Discovery({ sources: { resolver: stubResolver(federation.resolvers, { timeoutMs: 2000 }), wellKnownBase: baseFor(federation.wellKnownBase), clock: real, timeoutMs: 2000 }, directories: federation.directories, pins, cacheTtlMs: 0 });
  await gateway.discover(domain);
  await swap();
  t.equal((await gateway.discover(domain)).violation?.offered, pgp(k3.keys));
  t.match((await mm('pins', 'show', domain)).out, `offered ${pgp(k3.keys)}; pinned ${pgp(k1.keys)}`, 'the CLI reads the gateway\'s pins');
  const accept = await mm('pins', 'accept', domain);
  t.equal(accept.code, 0, accept.out + accept.err);
  t.equal(pgp((await pins.get(domain))?.keys), pgp(k3.keys), 'the gateway sees the accepted key');
  const used = await gateway.discover(domain);
  t.equal(pgp(used.keys), pgp(k3.keys));
  t.notOk(used.violation);
  t.equal((await mm('pins', 'forget', domain)).code, 0);
  t.equal(await pins.get(domain), undefined, 'the gateway sees the pin gone');
  // The gateway pins another domain: its write keeps the CLI's deletion.
  const other = await keyset('other-file.test', real);
  dir.records.set('other-file.test', await record(other, other.keys, [other], real()));
  await gateway.discover('other-file.test');
  const list = (await mm('pins', 'list')).out;
  t.match(list, /^other-file\.test\t/m);
  t.notMatch(list, 'cli-file.test', 'its next write does not bring the forgotten pin back');
});
