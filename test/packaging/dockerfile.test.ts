// The Dockerfile, checked without a container engine (this machine has only the docker client):
// the linter of the npm package dockerfile-utils (hadolint is not in the npm registry or in
// Debian), then what the image promises (docs/install.md "Docker"): two stages, non-root, a
// health check by node, the state volume, settings the configuration schema knows, and every
// COPY source present in the build context. Where an engine answers, the image is built too.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { validate } from 'dockerfile-utils';
import { loadConfig } from '../../cli/config.js';
import { run } from '../helpers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

/** Instructions of a Dockerfile: continuation lines joined, comments dropped. */
function instructions(src: string): { op: string; args: string }[] {
  return src
    .replace(/\\\r?\n(\s*#.*\r?\n)*/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => ({ op: l.split(/\s+/)[0]!.toUpperCase(), args: l.replace(/^\S+\s*/, '') }));
}
const all = instructions(text);
const stages = all.reduce<{ op: string; args: string }[][]>((acc, i) => (i.op === 'FROM' ? [...acc, [i]] : (acc.at(-1)!.push(i), acc)), []);
const runtime = stages.at(-1)!;

t.test('dockerfile-utils finds nothing, and does find a broken file', async (t) => {
  t.same(validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  const broken = text.replace(/^USER node$/m, 'USER').replace(/^FROM node:20-bookworm-slim$/m, 'FROM node:20-bookworm-slim AS build');
  t.ok(validate(broken).length >= 2, 'an empty USER and a duplicate stage name are reported');
});

t.test('multi-stage: built with the dev dependencies, run from dist/ and the pruned node_modules', async (t) => {
  t.equal(stages.length, 2);
  t.match(stages[0]!.map((i) => i.args).join('\n'), /npm ci[\s\S]*npm run build[\s\S]*npm prune --omit=dev/);
  const copies = runtime.filter((i) => i.op === 'COPY').map((i) => i.args);
  t.same(copies.filter((a) => a.startsWith('--from=build')).sort(), ['--from=build /src/dist ./dist', '--from=build /src/node_modules ./node_modules']);
  t.notOk(runtime.some((i) => i.op === 'RUN' && /npm (ci|install)|tsc/.test(i.args)), 'nothing is installed or built at run time');
});

t.test('the build stage gets every source folder and file the build reads', async (t) => {
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends: string; include: string[] };
  const copied = stages[0]!.filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1)).map((p) => p.replace(/^\.\//, ''));
  for (const need of [...build.include, 'tsconfig.build.json', build.extends.replace(/^\.\//, ''), 'package.json', 'package-lock.json', 'openapi.yaml']) t.ok(copied.includes(need), `${need} is copied`);
});

t.test('non-root, health check by node, state volume, read-only friendly', async (t) => {
  const user = runtime.filter((i) => i.op === 'USER').at(-1)?.args;
  t.ok(user && !/^(root|0)(:|$)/.test(user), `runs as ${user}`);
  const health = runtime.find((i) => i.op === 'HEALTHCHECK')?.args ?? '';
  t.match(health, /CMD \["node", "-e", ".*\/healthz/, 'the health check asks /healthz with node');
  t.notMatch(health, /curl|wget/, 'no curl or wget in the image');
  t.match(runtime.find((i) => i.op === 'ENTRYPOINT')?.args ?? '', '"/opt/mailmesh/dist/cli/main.js"');
  t.match(runtime.find((i) => i.op === 'VOLUME')?.args ?? '', '"/var/lib/mailmesh"');
});

t.test('the image environment is a valid configuration with dataDir in the volume', async (t) => {
  const env: Record<string, string> = {};
  for (const i of runtime.filter((i) => i.op === 'ENV')) for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  t.ok(Object.keys(env).filter((k) => k.startsWith('MAILMESH_')).length >= 5);
  const c = loadConfig({ env, cwd: '/opt/mailmesh' });
  t.equal(c.dataDir, '/var/lib/mailmesh');
  t.equal(c.store.url, 'sqlite:/var/lib/mailmesh/mailmesh.db');
  t.equal(c.masterKey.file, '/var/lib/mailmesh/master.key');
  t.same([c.http.host, c.dns.host, c.ldap.host, c.smtp.host], ['0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0'], 'the faces listen beyond the container');
  const exposed = runtime.find((i) => i.op === 'EXPOSE')?.args ?? '';
  for (const p of [`${c.http.port}/tcp`, `${c.dns.port}/udp`, `${c.dns.port}/tcp`, `${c.ldap.port}/tcp`, `${c.smtp.port}/tcp`]) t.match(exposed, p, `EXPOSE ${p}`);
});

t.test('every COPY source is in the build context and not excluded by .dockerignore', async (t) => {
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const glob = (p: string) => new RegExp('^' + p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '(/|$)');
  const excluded = (path: string) => ignore.some((p) => glob(p).test(path));
  for (const tool of ['node_modules', 'dist', '.git', 'data']) t.ok(excluded(tool), `${tool} is not sent to the engine`);
  const sources = all.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.replace(/--\S+\s+/g, '').split(/\s+/).slice(0, -1));
  t.ok(sources.length >= 8);
  for (const s of sources) t.ok(existsSync(join(ROOT, s)) && !excluded(s), `${s} is in the context`);
});

const engine = await run('docker', ['info', '--format', '{{.ServerVersion}}'], { allowFail: true }).catch(() => ({ code: -1, stderr: 'no docker client' }));
const noEngine = engine.code === 0 ? false : `no container engine here (${engine.stderr.trim().split('\n')[0]}): the linter above checks the Dockerfile`;
t.test('docker build, where a container engine runs', { skip: noEngine }, async (t) => {
  const r = await run('docker', ['build', '--quiet', '-t', 'mailmesh:test', ROOT], { allowFail: true });
  t.equal(r.code, 0, r.stderr);
});
