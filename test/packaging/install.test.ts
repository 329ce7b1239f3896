// deploy/install.sh into a temporary prefix (no root: every path is given), then what an
// administrator does with the result: the installed command, the generated configuration,
// `npm start` on the installed tree (which holds no TypeScript sources: it cannot build),
// the systemd unit through `systemd-analyze verify` and `security`, and an upgrade that keeps
// the configuration. docs/install.md "Install script" and "systemd".
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import type { Test } from 'tap';
import { run, tempDir } from '../helpers.js';
import { QUIET } from '../cli/helpers.js';

t.setTimeout(900_000);
const ROOT = new URL('../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
const dir = tempDir(t, 'mailmesh-install-');
const paths = {
  PREFIX: join(dir, 'opt/mailmesh'), BINDIR: join(dir, 'bin'), SYSCONFDIR: join(dir, 'etc/mailmesh'), UNITDIR: join(dir, 'systemd'), SYSUSERSDIR: join(dir, 'sysusers.d'),
};
const install = () => run('bash', [join(ROOT, 'deploy/install.sh')], { env: paths, allowFail: true });
const mailmesh = (args: string[], env: Record<string, string> = {}) => run(join(paths.BINDIR, 'mailmesh'), args, { env: { ...QUIET, ...env }, allowFail: true });

/** systemd-analyze's findings on a unit file: verify prints problems but may still exit 0. */
async function verify(unit: string): Promise<string> {
  const r = await run('systemd-analyze', ['verify', unit], { allowFail: true });
  return `${r.code === 0 ? '' : `exit ${r.code}\n`}${r.stderr}${r.stdout.toString()}`.trim();
}
async function exposure(unit: string): Promise<number> {
  const r = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unit], { allowFail: true });
  const m = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout.toString());
  if (!m) throw new Error(`no exposure level in: ${r.stdout.toString()}${r.stderr}`);
  return Number(m[1]);
}

t.test('bad arguments are refused with sysexits 64 before anything is written', async (t) => {
  const r = await run('bash', [join(ROOT, 'deploy/install.sh'), '--prefix', 'relative/path'], { env: paths, allowFail: true });
  t.equal(r.code, 64);
  t.match(r.stderr, 'paths must be absolute: relative/path');
  const u = await run('bash', [join(ROOT, 'deploy/install.sh'), '--frobnicate'], { env: paths, allowFail: true });
  t.equal(u.code, 64);
  t.match(u.stderr, 'unknown argument: --frobnicate');
  t.notOk(existsSync(dir + '/opt'), 'nothing installed');
  const odd = await run('bash', [join(ROOT, 'deploy/install.sh'), '--prefix', '/opt/mail mesh$x'], { env: paths, allowFail: true });
  t.equal(odd.code, 64, 'a path the wrapper and the unit could not carry');
  t.match(odd.stderr, 'unsupported character in path');
  // An existing folder the script did not make is never moved aside (an upgrade would delete it).
  const foreign = join(dir, 'usr-local');
  mkdirSync(join(foreign, 'share'), { recursive: true });
  const taken = await run('bash', [join(ROOT, 'deploy/install.sh'), '--prefix', foreign], { env: paths, allowFail: true });
  t.equal(taken.code, 64, taken.stderr);
  t.match(taken.stderr, 'exists and was not installed by this script');
  t.ok(existsSync(join(foreign, 'share')) && !existsSync(foreign + '.previous'), 'the folder is untouched');
});

t.test('install.sh builds, prunes and installs into the prefix', async (t) => {
  const r = await install();
  t.equal(r.code, 0, r.stderr);
  t.ok(existsSync(join(paths.PREFIX, 'dist/cli/main.js')), 'the built code');
  t.ok(existsSync(join(paths.PREFIX, 'openapi.yaml')) && existsSync(join(paths.PREFIX, 'LICENSE')), 'openapi.yaml and LICENSE beside it');
  t.notOk(existsSync(join(paths.PREFIX, 'node_modules/tap')), 'no dev dependency (tap)');
  t.notOk(existsSync(join(paths.PREFIX, 'node_modules/eslint')), 'no dev dependency (eslint)');
  t.notOk(existsSync(join(paths.PREFIX, 'cli')) || existsSync(join(paths.PREFIX, 'tsconfig.json')), 'no sources: the tree cannot build');
  t.equal(readlinkSync(join(paths.BINDIR, 'mailmesh')), join(paths.PREFIX, 'bin/mailmesh'), 'the command is linked');
  t.match(readFileSync(join(paths.UNITDIR, 'mailmesh.service'), 'utf8'), `ExecStart=${paths.PREFIX}/bin/mailmesh serve --config ${paths.SYSCONFDIR}/mailmesh.yaml`);
  t.match(readFileSync(join(paths.UNITDIR, 'mailmesh.service'), 'utf8'), /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'systemctl reload sends SIGHUP (TLS and policy reload)');
});

t.test('the installed command runs the built code', async (t) => {
  const help = await mailmesh(['--help']);
  t.equal(help.code, 0, help.stderr);
  for (const c of ['serve', 'init', 'domain', 'config']) t.match(help.stdout.toString(), new RegExp(`^\\s+${c}\\b`, 'm'), `--help lists ${c}`);
  const v = await mailmesh(['--version']);
  t.equal(v.code, 0, v.stderr);
  t.equal(v.stdout.toString().trim(), pkg.version, "--version is package.json's");
});

t.test('the generated configuration is valid and puts the state in /var/lib/mailmesh', async (t) => {
  const r = await mailmesh(['config', 'print', '--config', join(paths.SYSCONFDIR, 'mailmesh.yaml')], { MAILMESH_HTTP__PORT: '8080' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), /^dataDir: \/var\/lib\/mailmesh$/m);
  t.match(r.stdout.toString(), 'url: sqlite:/var/lib/mailmesh/mailmesh.db');
});

/** `npm start` in a tree, until it serves; the process group is ended with the test. */
async function npmStart(t: Test, cwd: string, dataDir: string): Promise<{ http: string }> {
  const child = spawn('npm', ['start', '--silent'], { cwd, detached: true, env: { ...process.env, ...QUIET, MAILMESH_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
  t.teardown(stop);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (/"msg":"mailmesh is serving"/.test(line)) resolve((JSON.parse(line) as { addresses: { http: string } }).addresses);
    });
    child.on('exit', (code) => reject(new Error(`npm start exited ${code}: ${stderr}`)));
  });
}

t.test('npm start runs the built code without building (the installed tree has no compiler input)', async (t) => {
  t.notOk(pkg.scripts.prestart, 'no prestart');
  t.notMatch(pkg.scripts.start, /tsc|build/, 'start does not build');
  const data = tempDir(t);
  const addresses = await npmStart(t, paths.PREFIX, data);
  const res = await fetch(`http://${addresses.http}/healthz`);
  t.equal(res.status, 200);
  t.ok(existsSync(join(data, 'mailmesh.db')), 'the state went to dataDir');
});

t.test('prepare builds only where the dev dependencies are (npm ci --omit=dev keeps dist/)', async (t) => {
  const tree = tempDir(t);
  writeFileSync(join(tree, 'package.json'), JSON.stringify({ name: 'x', version: '0.0.0', scripts: { prepare: pkg.scripts.prepare, build: 'echo BUILT; exit 3' } }));
  const without = await run('npm', ['run', '--silent', 'prepare'], { cwd: tree, allowFail: true });
  t.equal(without.code, 0, 'no dev dependencies: no build, no failure');
  t.match(without.stdout.toString(), 'dev dependencies omitted');
  mkdirSync(join(tree, 'node_modules/@types/node'), { recursive: true });
  const withDev = await run('npm', ['run', '--silent', 'prepare'], { cwd: tree, allowFail: true });
  t.match(withDev.stdout.toString(), 'BUILT', 'with them: the build runs');
  t.equal(withDev.code, 3, 'and its failure fails prepare');
});

t.test('the unit passes systemd-analyze verify and scores well in security', async (t) => {
  const unit = join(paths.UNITDIR, 'mailmesh.service');
  t.equal(await verify(unit), '', 'verify finds nothing');
  const level = await exposure(unit);
  t.comment(`systemd-analyze security --offline=true: overall exposure ${level} (0 best, 10 worst)`);
  t.ok(level <= 2, `exposure ${level} at most 2.0 ("OK")`);
  // The drop-in for ports below 1024 adds CAP_NET_BIND_SERVICE only.
  mkdirSync(unit + '.d');
  copyFileSync(join(ROOT, 'deploy/systemd/low-ports.conf'), join(unit + '.d', 'low-ports.conf'));
  t.equal(await verify(unit), '', 'verify with the low-ports drop-in');
  const low = await exposure(unit);
  t.comment(`with deploy/systemd/low-ports.conf: overall exposure ${low}`);
  t.ok(low > level && low <= 3, `CAP_NET_BIND_SERVICE in the host's user namespace costs a little (${level} → ${low})`);
  // With PrivateUsers=yes the capability would be the service's own namespace's: no host port below 1024.
  t.match(readFileSync(join(ROOT, 'deploy/systemd/low-ports.conf'), 'utf8'), /^PrivateUsers=no$/m, 'the drop-in turns PrivateUsers off');
  // The check can fail: a unit with a broken setting is reported.
  const broken = join(dir, 'broken.service');
  writeFileSync(broken, readFileSync(unit, 'utf8').replace('NoNewPrivileges=yes', 'NoNewPrivileges=perhaps'));
  t.match(await verify(broken), /Failed to parse boolean value.*perhaps/, 'a broken unit is reported');
});

t.test('the unit\'s user comes from the installed sysusers.d file', async (t) => {
  const unit = readFileSync(join(paths.UNITDIR, 'mailmesh.service'), 'utf8');
  t.match(unit, /^User=mailmesh$/m);
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'));
  const r = await run('systemd-sysusers', [`--root=${root}`, '-'], { input: readFileSync(join(paths.SYSUSERSDIR, 'mailmesh.conf')), allowFail: true });
  t.equal(r.code, 0, r.stderr);
  t.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^mailmesh:x:\d+:\d+:[^:]*:\/var\/lib\/mailmesh:\/usr\/sbin\/nologin$/m, 'a system user with the state as home and no shell');
});

t.test('an upgrade keeps the configuration and the previous tree', async (t) => {
  const conf = join(paths.SYSCONFDIR, 'mailmesh.yaml');
  writeFileSync(conf, readFileSync(conf, 'utf8') + '# edited by the administrator\n');
  const r = await install();
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.toString(), 'kept');
  t.match(readFileSync(conf, 'utf8'), '# edited by the administrator', 'the configuration is untouched');
  t.ok(existsSync(join(paths.PREFIX + '.previous', 'dist/cli/main.js')), 'the old tree is kept for a rollback');
  t.equal((await mailmesh(['--help'])).code, 0, 'the new tree runs');
});
