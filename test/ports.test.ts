import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { ConfigSchema, configKeys } from '../cli/config.js';
import { QUIET } from './cli/helpers.js';

// Tests that a machine cannot disturb: every test chooses its own ports. A mail server or a
// resolver on this machine (the configuration's defaults: ports 10025 and 53) must change no result.

const ROOT = new URL('..', import.meta.url).pathname;
const LOOPBACK_PORT = /(?:\b127(?:\.\d{1,3}){3}|\blocalhost|\[::1\]):(\d{1,5})\b/g;

/**
 * Ports a test may write after a loopback address: 0 (the system picks one), 1 (where nothing
 * listens: privileged, below the ephemeral range that port-0 listeners get, and its service,
 * tcpmux, is unused; the tests' "unreachable"), 6379 (the shared Redis, under a random prefix).
 */
const ALLOWED = new Set([0, 1, 6379]);

/** Other literals, each never connected to. */
const NEVER_CONNECTED: { file: string; literal: string; why: string }[] = [
  { file: 'test/federation/resolver.test.ts', literal: 'localhost:53', why: 'a resolver address refused as configuration' },
  { file: 'test/federation/resolver.test.ts', literal: '127.0.0.1:99999', why: 'a resolver address refused as configuration' },
  { file: 'test/federation/resolver.test.ts', literal: '[::1]:5353', why: 'a resolver address accepted as configuration, never asked' },
  { file: 'test/gateway/smtp/rcpt.test.ts', literal: '127.0.0.1:10025', why: 'a route computed from smtp.internalServer, never connected' },
  { file: 'test/directory/dns/helpers.ts', literal: '127.0.0.1:8080', why: 'the dir= URL inside a TXT record' },
  { file: 'test/directory/dns/dns.test.ts', literal: '127.0.0.1:8080', why: 'the dir= URL inside a TXT record' },
  { file: 'test/directory/store/redis-url.test.ts', literal: '[::1]:26381', why: 'a Redis URL parsed' },
];

function* testFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) yield* testFiles(join(dir, e.name));
    else if (e.name.endsWith('.ts')) yield join(dir, e.name);
  }
}

t.test('no test names a fixed loopback port but 0, 1 and the Redis port, beyond the documented literals', async (t) => {
  const found: string[] = [];
  const used = new Set<(typeof NEVER_CONNECTED)[number]>();
  for (const path of testFiles(join(ROOT, 'test'))) {
    const file = relative(ROOT, path);
    if (file === 'test/ports.test.ts') continue;
    for (const m of readFileSync(path, 'utf8').matchAll(LOOPBACK_PORT)) {
      if (ALLOWED.has(Number(m[1]))) continue;
      const known = NEVER_CONNECTED.find((k) => k.file === file && k.literal === m[0]);
      if (known) used.add(known);
      else found.push(`${file}: ${m[0]}`);
    }
  }
  t.same(found, [], 'choose a port (listen on 0), or use 127.0.0.1:1 for "nothing listens"');
  t.same(NEVER_CONNECTED.filter((k) => !used.has(k)), [], 'every documented literal is still there');
});

t.test('the CLI runs of the tests override every default that names a loopback port', async (t) => {
  const defaults = ConfigSchema.parse({}) as unknown as Record<string, Record<string, unknown>>;
  const quiet = QUIET as Record<string, string>;
  const keys = configKeys();
  const envOf = (path: string) => keys.find((k) => k.path === path)!.env;
  // The listeners: a face whose default host is loopback listens on port 0.
  for (const [section, value] of Object.entries(defaults)) {
    if (typeof value !== 'object' || value === null || value.host !== '127.0.0.1' || typeof value.port !== 'number') continue;
    t.equal(quiet[envOf(`${section}.port`)], '0', `${section}.port`);
  }
  // The next hops: a default host:port on loopback goes to 127.0.0.1:1. webmail.baseUrl only names links in messages.
  for (const { path, env } of keys) {
    const value = path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], defaults);
    if (path === 'webmail.baseUrl' || !JSON.stringify(value ?? '').match(LOOPBACK_PORT)) continue;
    t.equal(quiet[env], '127.0.0.1:1', path);
  }
});
