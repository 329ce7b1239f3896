/**
 * What the benchmark scripts share: anchor daemons started in the foreground and stopped at the
 * end, interleaved rounds, the load average, and the result table (free ports for the daemons:
 * test/helpers.ts freePort). Benchmarks are scripts run by hand (bench/README.md), never tests:
 * nothing here asserts a timing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary directory (world-traversable: nginx workers run as another user), removed at exit. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  rmAtExit.push(dir);
  return dir;
}
const rmAtExit: string[] = [];
process.on('exit', () => rmAtExit.forEach((d) => rmSync(d, { recursive: true, force: true })));

export interface Daemon {
  proc: ChildProcess;
  /** Everything it printed on stdout and stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a daemon in the foreground and resolves once its output matches `ready` (e.g. NSD's
 * "nsd started", nginx's "start worker process": both bind their sockets before they say so) —
 * no fixed sleeps. Rejects if the process exits first, or after `timeoutMs`.
 */
export async function startDaemon(cmd: string, args: string[], ready: RegExp, timeoutMs = 20_000): Promise<Daemon> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // If the script dies half-way, the daemon must not outlive it.
  process.on('exit', () => proc.exitCode === null && proc.kill('SIGTERM'));
  let out = '';
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const daemon: Daemon = {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) void daemon.stop().then(() => reject(err));
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`${cmd} not ready after ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) finish();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('error', (e) => finish(e));
    proc.once('exit', (code, signal) => finish(new Error(`${cmd} exited (${code ?? signal}) before it was ready:\n${out}`)));
  });
  return daemon;
}

/** /proc/loadavg: the 1, 5 and 15 minute load averages (the machine is shared; report them with every run). */
export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** A plain-text table, columns padded to their widest cell. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const width = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(width[i]!)).join(' | ') + ' |';
  return [line(head), '|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

export const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '-');
export const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * Measures every server once per round, the rounds interleaving the servers so that a change in
 * the machine's load hits all of them alike. Returns the results per server, with the load
 * average before and after.
 */
export async function interleave<S, R>(servers: readonly S[], rounds: number, measure: (s: S) => Promise<R>): Promise<{ results: R[][]; load: string }> {
  const before = loadAverage();
  const results = servers.map(() => [] as R[]);
  for (let round = 0; round < rounds; round++) {
    for (const [i, s] of servers.entries()) results[i]!.push(await measure(s));
  }
  return { results, load: `before ${before}; after ${loadAverage()}` };
}
