import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isMailmeshError, type ErrorCode } from '../directory/errors.js';
import type { PolicySettings } from '../gateway/policy.js';

type Asserts = Test;

/** Asserts that `f` throws a MailmeshError with this code. */
export function throwsCode(t: Asserts, f: () => unknown, code: ErrorCode, msg?: string): void {
  try {
    f();
  } catch (e) {
    t.ok(isMailmeshError(e, code), `${msg ?? 'throws'} ${code} (got ${(e as { code?: string }).code ?? e})`);
    return;
  }
  t.fail(`${msg ?? 'expected'} ${code}, nothing was thrown`);
}

/** Asserts that the promise rejects with a MailmeshError with this code. */
export async function rejectsCode(t: Asserts, p: Promise<unknown> | (() => Promise<unknown>), code: ErrorCode, msg?: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    t.ok(isMailmeshError(e, code), `${msg ?? 'rejects'} ${code} (got ${(e as { code?: string }).code ?? e})`);
    return;
  }
  t.fail(`${msg ?? 'expected'} ${code}, it resolved`);
}

/** A temporary directory removed when the test ends. */
export function tempDir(t: Asserts, prefix = 'mailmesh-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The routing policy the gateway tests start from (each changes what it tests). */
export const DEFAULT_POLICY: PolicySettings = {
  default: { mode: 'auto', fallback: 'tls', format: 'pgp-mime' },
  domains: {},
  trigger: { subjectTag: '[secure]', header: 'X-Mailmesh-Encrypt' },
  keepSubject: false,
  inbound: { invalidSignature: 'reject', unknownSigner: 'mark', unsigned: 'reject', authorMismatch: 'reject', authorAlignment: 'strict', keyChanged: 'reject' },
};

/** The Redis the tests use; CI fails (never skips) when it is unreachable. */
export const TEST_REDIS_URL = process.env.MAILMESH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/**
 * A fresh Redis key prefix with a hash tag (so a cluster keeps its keys on one slot); every key
 * under it is deleted, through a connection of its own, when the test ends.
 */
export function redisPrefix(t: Asserts, url = TEST_REDIS_URL): string {
  const prefix = `mailmesh-test:{${randomBytes(6).toString('hex')}}:`;
  t.teardown(async () => {
    const { RedisStore } = await import('../directory/store/redis.js');
    const s = await new RedisStore(url, { prefix }).connect();
    await s.destroy();
    await s.close();
  });
  return prefix;
}

/** A seeded PRNG (mulberry32) for property and fuzz loops, so a failing run can be repeated. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs a real client (gpg, openssl, kdig …) and returns its output; throws with stderr on a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean } = {},
): Promise<{ stdout: Buffer; stderr: string; code: number }> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code) => {
      const r = { stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), code: code ?? -1 };
      if (r.code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`));
      else resolve(r);
    });
    // A client that exits without reading its input closes the pipe: EPIPE then is no error of ours; its exit code tells.
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
  });
}

/** A throw-away GnuPG home; its agent is stopped when the test ends. */
export function gpgHome(t: Asserts): { home: string; gpg: (args: string[], input?: string | Buffer) => ReturnType<typeof run> } {
  const home = tempDir(t, 'mailmesh-gpg-');
  t.teardown(() => run('gpgconf', ['--kill', 'all'], { env: { GNUPGHOME: home }, allowFail: true }));
  return {
    home,
    gpg: (args, input) => run('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { env: { GNUPGHOME: home }, input }),
  };
}

/**
 * A directory on a MemoryStore with curve25519 keys (addDomain takes 1–2 s for the RSA-3072
 * certificates: create few); `clock` is the directory's (a test clock moves only when told).
 */
export async function memoryDirectory(clock?: () => Date, more: Partial<import('../directory/directory.js').DirectoryOptions> = {}): Promise<import('../directory/directory.js').Directory> {
  const [{ Directory }, { MemoryStore }] = await Promise.all([import('../directory/directory.js'), import('../directory/store/memory.js')]);
  return Directory.open(new MemoryStore(), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 }, clock, ...more });
}

/** A port free for both UDP and TCP on 127.0.0.1 right now, for daemons (knotd, nsd, nginx) that cannot be told to pick one. */
export async function freePort(): Promise<number> {
  const [{ default: dgram }, { default: net }] = await Promise.all([import('node:dgram'), import('node:net')]);
  for (;;) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const port = udp.address().port;
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      tcp.once('error', () => r(false));
      tcp.listen(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => udp.close(() => r()));
    if (ok) {
      await new Promise<void>((r) => tcp.close(() => r()));
      return port;
    }
  }
}

/** The `server`, `database` and `log` sections of a knotd configuration for a test: one worker each, on 127.0.0.1@port, state under `dir` (run/, db/). */
export function knotServerConf(dir: string, port: number): string {
  return `server:
    rundir: "${dir}/run"
    listen: 127.0.0.1@${port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "${dir}/db"
log:
  - target: stderr
    any: info
`;
}
