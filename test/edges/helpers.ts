import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';

const FIXTURE = new URL('./face.ts', import.meta.url).pathname;
const LOADER = new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url).pathname;

/** One face in a child process of its own (face.ts), so its RSS is its own; killed when the test ends. */
export async function startFace(t: Test, face: 'ldap' | 'http' | 'smtp', limits: object = {}): Promise<{ pid: number; port: number }> {
  const child = spawn(process.execPath, ['--import', LOADER, FIXTURE, face, JSON.stringify(limits)], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.on('exit', (code) => reject(new Error(`face.ts ${face} exited ${code}: ${stderr}`)));
  });
  return { pid: child.pid!, port };
}

/** Resident set size (VmRSS) and its peak so far (VmHWM) of a process, in MB (Linux /proc/<pid>/status). */
export function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A client that writes `total` bytes of `unit` repeated and never reads a byte; `closed`
 * resolves when the server closes the connection. The caller destroys `socket`.
 */
export async function floodNeverReading(
  port: number,
  unit: Buffer,
  total: number,
  /** Sent first ('' for a server that speaks first); the flood starts once the first answer arrived (so the connection is known to be served). */
  hello?: Buffer | '',
): Promise<{ socket: net.Socket; closed: Promise<void>; answer: string }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let answer = '';
  if (hello !== undefined) {
    if (hello.length) socket.write(hello);
    answer = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
  }
  socket.pause();
  const batch = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(65536 / unit.length)) }, () => unit));
  for (let sent = 0; sent < total; sent += batch.length) socket.write(batch);
  return { socket, closed, answer };
}

/**
 * Watches a process's RSS while it works through a flood: returns as soon as it grew `bound` MB
 * over `idle` (the test fails), or once it stayed within 1 MB for `still` polls of 200 ms in a
 * row (it settled). No timing threshold: a slow machine only takes longer to settle.
 */
export async function rssUnderFlood(pid: number, idle: number, bound: number, still = 10): Promise<{ grown: number; settled: boolean }> {
  let last = rss(pid).now;
  for (let same = 0; same < still; ) {
    await tick(200);
    const now = rss(pid).now;
    if (now - idle >= bound) return { grown: now - idle, settled: false };
    same = Math.abs(now - last) < 1 ? same + 1 : 0;
    last = now;
  }
  return { grown: last - idle, settled: true };
}

/** Waits until the process's RSS is within `mb` of `target`, up to `polls` × 200 ms; returns the last reading. */
export async function settleRss(pid: number, target: number, mb: number, polls = 50): Promise<number> {
  let now = rss(pid).now;
  for (let i = 0; i < polls && now > target + mb; i++) {
    await tick(200);
    now = rss(pid).now;
  }
  return now;
}
