import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { EXIT, exitCodeFor } from '../../cli/exit.js';
import { MailmeshError } from '../../directory/errors.js';
import { closeAll } from '../../cli/supervise.js';
import type { Logger } from 'pino';
import { tempDir } from '../helpers.js';
import { cli } from './helpers.js';

// Every exit code of docs/operations.md "Exit codes", from the built CLI as a child process: the
// code, and stderr naming the problem. Real processes on a loaded machine: generous time.
t.setTimeout(600_000);

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** A fresh directory with an initialised store (master key and SQLite file). */
async function initialised(t: Test): Promise<string> {
  const cwd = tempDir(t);
  t.equal((await cli(cwd, ['init'])).code, EXIT.OK, 'init');
  return cwd;
}

t.test('--version and -V print the package version, one line, exit 0', async (t) => {
  const cwd = tempDir(t);
  for (const flag of ['--version', '-V']) {
    const r = await cli(cwd, [flag]);
    t.equal(r.code, EXIT.OK, flag);
    t.equal(r.stdout.toString(), `${version}\n`, flag);
  }
  t.equal((await cli(cwd, ['--help'])).code, EXIT.OK, '--help is no error');
});

t.test('64: usage errors from commander and from a command', async (t) => {
  const cwd = tempDir(t);
  const cases: [string[], RegExp][] = [
    [['--bogus'], /unknown option '--bogus'/],
    [['nosuch'], /unknown command 'nosuch'/],
    [['domain', 'show'], /missing required argument 'domain'/],
    [['domain', 'roll', 'x.test', '--overlap', 'soon'], /'--overlap <days>' argument 'soon' is invalid/],
    [['keys', 'import', '--domain', 'x.test'], /give a file or --ldap/],
    [[], /Usage: mailmesh/],
  ];
  for (const [args, stderr] of cases) {
    const r = await cli(cwd, args);
    t.equal(r.code, EXIT.USAGE, `mailmesh ${args.join(' ')}`);
    t.match(r.stderr, stderr);
  }
});

t.test('78: the configuration is invalid', async (t) => {
  const cwd = tempDir(t);
  writeFileSync(join(cwd, 'bad.yaml'), 'smtp:\n  maxRecipients: many\n');
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['-c', 'missing.yaml', 'config', 'print'], {}, /CONFIG_INVALID.*missing\.yaml: no such file/],
    [['-c', 'bad.yaml', 'config', 'print'], {}, /CONFIG_INVALID.*smtp\.maxRecipients/],
    [['config', 'print'], { MAILMESH_HTTP__PROT: '1' }, /CONFIG_INVALID.*MAILMESH_HTTP__PROT: no such setting/],
    [['domain', 'list'], { MAILMESH_MASTER_KEY: 'abc' }, /MASTER_KEY_INVALID/],
  ];
  for (const [args, env, stderr] of cases) {
    const r = await cli(cwd, args, env);
    t.equal(r.code, EXIT.CONFIG, `mailmesh ${args.join(' ')}`);
    t.match(r.stderr, stderr);
  }
});

t.test('65 data, 66 no input, 77 wrong master key, 1 not found', async (t) => {
  const cwd = await initialised(t);
  writeFileSync(join(cwd, 'garbage.pem'), 'not a key\n');
  writeFileSync(join(cwd, 'pass'), 'secret\n');
  const cases: [string[], Record<string, string>, number, RegExp][] = [
    [['cluster', 'join', 'garbage.pem', '--passphrase-file', 'pass', '--offline'], {}, EXIT.DATAERR, /CLUSTER_BUNDLE_INVALID/],
    [['keys', 'import', 'nothere.pem', '--domain', 'x.test'], {}, EXIT.NOINPUT, /ENOENT.*nothere\.pem/],
    [['domain', 'list'], { MAILMESH_MASTER_KEY: randomBytes(32).toString('base64') }, EXIT.NOPERM, /MASTER_KEY_MISMATCH/],
    [['domain', 'show', 'nobody.test'], {}, EXIT.FAILURE, /DOMAIN_NOT_FOUND.*nobody\.test/],
  ];
  for (const [args, env, code, stderr] of cases) {
    const r = await cli(cwd, args, env);
    t.equal(r.code, code, `mailmesh ${args.join(' ')}`);
    t.match(r.stderr, stderr);
  }
  // Nothing was lost: the store still opens with its own key.
  t.equal((await cli(cwd, ['domain', 'list'])).code, EXIT.OK, 'the store is intact');
});

t.test('69: the store cannot be reached, or a face cannot listen', async (t) => {
  const cwd = tempDir(t);
  const down = await cli(cwd, ['domain', 'list'], { MAILMESH_STORE__URL: 'redis://127.0.0.1:1' });
  t.equal(down.code, EXIT.UNAVAILABLE);
  t.match(down.stderr, /STORE_UNAVAILABLE/);

  // A port held by another process, for each face; DNS on UDP and on TCP.
  const tcp = createServer();
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  t.teardown(() => tcp.close());
  const taken = (tcp.address() as AddressInfo).port;
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  t.teardown(() => udp.close());
  const takenUdp = udp.address().port;
  const faces: [string, number, string][] = [
    ['http', taken, ''], ['ldap', taken, ''], ['smtp', taken, ''], ['dns', taken, ' \\(TCP\\)'], ['dns', takenUdp, ' \\(UDP\\)'],
  ];
  for (const [face, port, transport] of faces) {
    const r = await cli(cwd, ['serve'], { [`MAILMESH_${face.toUpperCase()}__PORT`]: String(port) });
    t.equal(r.code, EXIT.UNAVAILABLE, `${face} on a taken port`);
    t.match(r.stderr, new RegExp(`LISTEN_FAILED.*${face}\\.port ${port} on 127\\.0\\.0\\.1${transport} is in use \\(EADDRINUSE\\): set ${face}\\.port or MAILMESH_${face.toUpperCase()}__PORT`));
  }
});

t.test('70: an unexpected failure', async (t) => {
  const cwd = tempDir(t);
  // A fault no code path expects: the process's stdout throws (preloaded, as a broken runtime would).
  const preload = join(cwd, 'broken.mjs');
  writeFileSync(preload, 'process.stdout.write = () => { throw new Error("stdout broke"); };\n');
  const r = await cli(cwd, ['config', 'print'], { NODE_OPTIONS: `--import=${preload}` });
  t.equal(r.code, EXIT.SOFTWARE);
  t.match(r.stderr, /INTERNAL: internal error: stdout broke/);
});

t.test('75: try again later (a roll finished before its overlap); 2 (a pin violation) is walked by test/federation/pins-cli.test.ts', async (t) => {
  const cwd = await initialised(t);
  t.equal((await cli(cwd, ['domain', 'add', 'later.test'])).code, EXIT.OK, 'domain add');
  t.equal((await cli(cwd, ['domain', 'roll', 'later.test'])).code, EXIT.OK, 'roll announced');
  const r = await cli(cwd, ['domain', 'roll', 'later.test', '--finish']);
  t.equal(r.code, EXIT.TEMPFAIL, 'roll --finish before the overlap');
  t.match(r.stderr, /ROLL_TOO_EARLY/);
  // Nothing changed: the roll is still announced and can be finished later.
  t.match((await cli(cwd, ['domain', 'roll', 'later.test', '--status'])).stdout.toString(), /next/);
});

t.test('the table: codes no command above reaches on this machine', async (t) => {
  const errno = (code: string) => Object.assign(new Error(code), { code });
  t.equal(exitCodeFor(new MailmeshError('SERIAL_CONFLICT')), EXIT.TEMPFAIL);
  t.equal(exitCodeFor(new MailmeshError('RATE_LIMITED')), EXIT.TEMPFAIL);
  t.equal(exitCodeFor(new MailmeshError('SIGNATURE_INVALID')), EXIT.NOPERM, 'kind forbidden');
  t.equal(exitCodeFor(new MailmeshError('DOMAIN_EXISTS')), EXIT.DATAERR, 'kind conflict');
  t.equal(exitCodeFor(errno('EACCES')), EXIT.NOPERM);
  t.equal(exitCodeFor(errno('EISDIR')), EXIT.NOINPUT);
  t.equal(exitCodeFor(new MailmeshError('INTERNAL', 'wrapped', { cause: errno('ENOENT') })), EXIT.NOINPUT, 'a wrapped system error exits as what it wraps');
  t.equal(exitCodeFor(new Error('no code')), EXIT.SOFTWARE);
});

t.test('shutdown: every step runs despite a failure before it, and a failure rejects (serve then exits 70)', async (t) => {
  const ran: string[] = [];
  const errors: unknown[] = [];
  const log = { error: (o: { err: unknown }) => errors.push(o.err) } as unknown as Logger;
  const step = (name: string, fail = false) => async () => {
    ran.push(name);
    if (fail) throw new Error(`${name} broke`);
  };
  await t.rejects(closeAll([step('smtp'), step('dns', true), step('store')], log), { code: 'INTERNAL', message: /1 shutdown step\(s\) failed/ });
  t.same(ran, ['smtp', 'dns', 'store']);
  t.match(String(errors[0]), 'dns broke', 'the failure is logged');
  await t.resolves(closeAll([step('smtp'), step('store')], log), 'a clean stop resolves (exit 0)');
});
