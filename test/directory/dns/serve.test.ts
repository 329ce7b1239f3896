import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { TYPE } from '../../../directory/dnswire.js';
import { run, tempDir } from '../../helpers.js';
import { floodAxfr, kdig, query } from './helpers.js';

// The DNS face of the built `mailmesh serve` (npm test builds it) under hostile input, as the
// findings were made: a datagram from source port 0, and TCP clients that never read. The RSS
// is the server process's own (/proc/<pid>/status).

const MAIN = new URL('../../../dist/cli/main.js', import.meta.url).pathname;
const RAW_UDP = join(dirname(fileURLToPath(import.meta.url)), 'raw-udp.py');
const MiB = 1024 * 1024;

interface Serving {
  child: ChildProcess;
  http: string;
  dns: { host: string; port: number };
}

/** `mailmesh serve` on free ports with a memory store; resolves when it says it is serving. */
async function serve(t: Test): Promise<Serving> {
  const env: NodeJS.ProcessEnv = { ...process.env, MAILMESH_STORE__URL: 'memory:', MAILMESH_LOG__PRETTY: 'false', MAILMESH_LOG__LEVEL: 'info' };
  for (const face of ['HTTP', 'DNS', 'LDAP', 'SMTP']) env[`MAILMESH_${face}__PORT`] = '0';
  const child = spawn('node', [MAIN, 'serve'], { cwd: tempDir(t), env, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill('SIGKILL'));
  for await (const line of createInterface({ input: child.stdout! })) {
    const l = (() => {
      try {
        return JSON.parse(line) as { msg?: string; addresses?: Record<string, string> };
      } catch {
        return {};
      }
    })();
    if (l.msg !== 'mailmesh is serving') continue;
    const [host, port] = l.addresses!.dns!.split(/:(?=\d+$)/);
    child.stdout!.resume();
    return { child, http: l.addresses!.http!, dns: { host: host!, port: Number(port) } };
  }
  throw new Error('serve stopped before it was serving');
}

async function until(ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await ok()) return;
    await delay(50);
  }
  throw new Error('condition not reached');
}

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const metric = async (s: Serving, series: string) => {
  const text = await (await fetch(`http://${s.http}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(series + ' '))?.split(' ')[1] ?? 0);
};

t.test('serve: a datagram from source port 0 stops nothing; the fault shows in /metrics', async (t) => {
  const s = await serve(t);
  await run('python3', [RAW_UDP, s.dns.host, String(s.dns.port), '0', query('dir.mailmesh.test', TYPE.SOA).toString('hex')]);
  t.equal((await kdig(s.dns.port, ['dir.mailmesh.test', 'SOA'])).status, 'NOERROR', 'DNS answers');
  t.equal((await fetch(`http://${s.http}/healthz`)).status, 200, 'HTTP answers');
  t.equal(await metric(s, 'mailmesh_faults_total{face="dns"}'), 1, 'mailmesh_faults_total{face="dns"} 1');
  t.equal(s.child.exitCode, null, 'the process runs');
});

t.test('serve: TCP clients that ask for AXFR and never read do not grow the server without bound', async (t) => {
  const s = await serve(t);
  // Warm up (the first transfer builds what later ones reuse), then take the baseline.
  const zone = await kdig(s.dns.port, ['AXFR', 'dir.mailmesh.test']);
  const transfer = Number(/Received (\d+) B/.exec(zone.out)![1]);
  await delay(500);
  const baseline = rssOf(s.child.pid!);
  // Four connections, 40,000 transfers each asked for at once: ≈ 4 × 40000 × transfer octets of answers.
  const flood = async () => {
    const socks = floodAxfr(s.dns, 4, 40_000);
    t.teardown(() => socks.forEach((x) => x.destroy()));
    // RSS sampled every 100 ms until all four are stopped (their backlogs full) and 2 s more; 30 s at most.
    let most = 0;
    let pending = 0;
    for (let i = 0, full = -1; i < 300 && (full < 0 || i < full + 20); i++) {
      await delay(100);
      most = Math.max(most, rssOf(s.child.pid!));
      pending = await metric(s, 'mailmesh_dns_tcp_pending_bytes');
      if (full < 0 && pending >= 4 * 4 * MiB) full = i;
    }
    socks.forEach((x) => x.destroy());
    return { most, pending };
  };
  const first = await flood();
  // Bound: what the limits let the server hold for these clients (4 × dns.maxPendingBytes = 16 MiB,
  // each over by at most one message); plus 64 MiB, as V8 collects Buffers (answers already handed
  // to the kernel) only once that much more external memory has been allocated since its last
  // collection; plus 32 MiB for the JS heap (the write requests) and the allocator.
  const bound = 16 * MiB + 64 * MiB + 32 * MiB;
  t.ok(first.most - baseline < bound, `RSS grew by ${((first.most - baseline) / MiB).toFixed(1)} MiB (< ${bound / MiB} MiB) from ${(baseline / MiB).toFixed(1)} MiB; unbounded it would be ${((4 * 40000 * transfer) / MiB).toFixed(0)} MiB of answers`);
  t.ok(first.pending <= 4 * (4 * MiB + 16 * 1024 + 2), `${(first.pending / MiB).toFixed(2)} MiB queued (≤ 4 × 4 MiB + one message each)`);
  t.ok(first.pending >= 4 * 4 * MiB, 'and each client did get its 4 MiB queued');
  await until(async () => (await metric(s, 'mailmesh_dns_tcp_connections')) === 0);
  t.equal(await metric(s, 'mailmesh_dns_tcp_pending_bytes'), 0, 'after the close nothing is queued any more');
  // The same flood again: nothing of the first accumulates, the same bound holds.
  const second = await flood();
  t.ok(second.most - baseline < bound, `a second flood peaks at +${((second.most - baseline) / MiB).toFixed(1)} MiB (the first at +${((first.most - baseline) / MiB).toFixed(1)} MiB)`);
  await until(async () => (await metric(s, 'mailmesh_dns_tcp_connections')) === 0);
  t.equal(await metric(s, 'mailmesh_dns_tcp_pending_bytes'), 0, 'nothing queued any more');
  t.equal((await kdig(s.dns.port, ['dir.mailmesh.test', 'SOA', '+tcp'])).status, 'NOERROR', 'and it answers');
});
