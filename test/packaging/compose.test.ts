// deploy/compose/*.yml without an engine (`docker compose` is not installed here): YAML with
// merge keys, the mailmesh services on one image built from the repository's Dockerfile, hardened
// alike, state in the volume, an environment the configuration schema accepts, and for the
// cluster a redis-sentinel store URL whose Sentinels and master name are those of the file.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../../cli/config.js';
import { parseRedisUrl } from '../../directory/store/redis.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const DIR = join(ROOT, 'deploy/compose');
// The default SMTP drain of the configuration schema, which a stop must outlast.
const drainSec = loadConfig({ env: {}, cwd: DIR }).smtp.drainSec;
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Service { image?: string; build?: { context: string; dockerfile: string }; read_only?: boolean; stop_grace_period?: string; user?: string; cap_drop?: string[];
  environment?: Record<string, string>; volumes?: string[]; ports?: string[]; command?: string[]; depends_on?: string[] }
const load = (file: string) => parse(readFileSync(join(DIR, file), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };

/** Compose's variable interpolation as far as these files use it: ${NAME} and ${NAME:?message}. */
function interpolate(env: Record<string, string>, vars: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(/\$\{(\w+)(?::\?([^}]*))?\}/g, (_, name: string, msg?: string) => {
    const value = vars[name];
    if (value === undefined || (msg !== undefined && value === '')) throw new Error(`${name}: ${msg ?? 'unset'}`);
    return value;
  })]));
}

function checkNodes(t: Test, file: string, vars: Record<string, string>) {
  const doc = load(file);
  const nodes = Object.entries(doc.services).filter(([, s]) => s.image?.startsWith('mailmesh:'));
  t.ok(nodes.length >= 1, `${file}: mailmesh services`);
  const configs = nodes.map(([name, s]) => {
    t.equal(s.image, `mailmesh:${version}`, `${name}: the image is named after package.json's version`);
    t.ok(s.build && existsSync(join(resolve(DIR, s.build.context), s.build.dockerfile)) && resolve(DIR, s.build.context) === resolve(ROOT), `${name}: built from the repository's Dockerfile`);
    t.equal(s.read_only, true, `${name}: read-only root filesystem`);
    t.equal(s.user, 'node', `${name}: the image's unprivileged user`);
    const grace = /^(\d+)s$/.exec(s.stop_grace_period ?? '');
    t.ok(grace && Number(grace[1]) > drainSec, `${name}: stop_grace_period (${s.stop_grace_period}) outlasts the SMTP drain (smtp.drainSec ${drainSec} s)`);
    t.same(s.cap_drop, ['ALL'], `${name}: no capabilities`);
    const state = (s.volumes ?? []).find((v) => v.endsWith(':/var/lib/mailmesh'));
    t.ok(state && doc.volumes[state.split(':')[0]!] !== undefined, `${name}: a named volume at /var/lib/mailmesh`);
    const c = loadConfig({ env: interpolate(s.environment ?? {}, vars), cwd: '/opt/mailmesh' });
    t.equal(c.dataDir, '/var/lib/mailmesh', `${name}: dataDir is the volume`);
    for (const [face, port] of [['http', c.http.port], ['dns', c.dns.port], ['ldap', c.ldap.port], ['smtp', c.smtp.port]] as const) {
      t.ok((s.ports ?? []).some((p) => p.split('/')[0]!.endsWith(`:${port}`)), `${name}: the ${face} port ${port} is published`);
      // Proxied connections come from the bridge gateway, inside smtp.internalNetworks: SMTP on loopback only (no open relay).
      if (face === 'smtp') t.ok((s.ports ?? []).filter((p) => p.split('/')[0]!.endsWith(`:${port}`)).every((p) => p.startsWith('127.0.0.1:')), `${name}: SMTP is published on loopback only`);
    }
    return c;
  });
  const published = Object.values(doc.services).flatMap((s) => s.ports ?? []).map((p) => p.replace(/:\d+(\/\w+)?$/, '$1'));
  t.equal(new Set(published).size, published.length, `${file}: no host port published twice`);
  return { doc, configs };
}

t.test('one-node.yml: one node on SQLite in its volume', async (t) => {
  const { doc, configs } = checkNodes(t, 'one-node.yml', {});
  t.same(Object.keys(doc.services), ['mailmesh']);
  t.equal(configs[0]!.store.url, 'sqlite:/var/lib/mailmesh/mailmesh.db');
});

t.test('cluster.yml: two nodes on one Sentinel-managed Redis, with one master key', async (t) => {
  const key = Buffer.alloc(32, 7).toString('base64');
  const { doc, configs } = checkNodes(t, 'cluster.yml', { MAILMESH_MASTER_KEY: key });
  t.equal(configs.length, 2, 'two nodes');
  t.same(configs.map((c) => c.store.url), [configs[0]!.store.url, configs[0]!.store.url], 'one store');
  t.same(configs.map((c) => c.masterKey.value), [key, key], 'one master key, from the environment');
  const target = parseRedisUrl(configs[0]!.store.url);
  if (target.mode !== 'sentinel') return t.fail(`store.url is not a sentinel URL: ${configs[0]!.store.url}`);
  const script = (s: Service) => (s.command ?? []).join(' ');
  for (const n of target.nodes) {
    const s = doc.services[n.host];
    t.ok(s && /redis-sentinel/.test(script(s)) && script(s).includes(`'port ${n.port}'`), `${n.host}:${n.port} is a Sentinel of the file`);
  }
  t.ok(target.nodes.length >= 3, 'three Sentinels: a quorum survives one');
  const monitor = /sentinel monitor (\S+) (\S+) (\d+) (\d+)/.exec(script(doc.services[target.nodes[0]!.host]!));
  t.equal(monitor?.[1], target.master, 'the Sentinels watch the master the URL names');
  t.ok(monitor && doc.services[monitor[2]!], `the monitored master ${monitor?.[2]} is a service`);
  t.ok(Number(monitor?.[4]) <= target.nodes.length, 'the quorum is reachable');
  t.ok(Object.values(doc.services).some((s) => script(s).includes(`--replicaof ${monitor?.[2]} ${monitor?.[3]}`)), 'a replica follows the master');
  t.throws(() => interpolate(doc.services['mailmesh-a']!.environment!, {}), /MAILMESH_MASTER_KEY: set MAILMESH_MASTER_KEY/, 'without a master key the file is refused, as compose does');
});
