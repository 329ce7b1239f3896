import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort, run, tempDir } from '../../helpers.js';

/** A redis-server (or sentinel) this test started; `stop` kills it, `start` runs it again on the same port. */
export interface RedisServer {
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server <args…>` on `port` and resolves when its log says `ready` (the log goes
 * to stdout); it is killed when the test ends. Rejects if it exits first.
 */
export async function redisServer(t: Test, port: number, args: string[], ready = /Ready to accept connections/): Promise<RedisServer> {
  let proc: ChildProcess | undefined;
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const p = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      let log = '';
      p.on('error', reject);
      p.stdout.on('data', (d: Buffer) => {
        log += d.toString();
        if (ready.test(log)) resolve();
      });
      p.stderr.on('data', (d: Buffer) => (log += d.toString()));
      p.on('exit', (code) => reject(new Error(`redis-server on ${port} exited (${code}) before it was ready:\n${log}`)));
    });
  t.teardown(stop);
  await start();
  return { port, start, stop };
}

/** A port free on 127.0.0.1 whose cluster bus port (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 > 65535) continue;
    const bus = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      bus.once('error', () => r(false));
      bus.listen(port + 10000, '127.0.0.1', () => r(true));
    });
    if (ok) {
      await new Promise<void>((r) => bus.close(() => r()));
      return port;
    }
  }
}

const PLAIN = ['--save', '', '--appendonly', 'no'];

/** One standalone redis-server with nothing on disk. */
export async function startRedis(t: Test): Promise<RedisServer> {
  const dir = tempDir(t, 'mailmesh-redis-');
  return redisServer(t, await freePort(), [...PLAIN, '--dir', dir]);
}

/**
 * A Redis Cluster of three masters without replicas, made with `redis-cli --cluster create`;
 * resolves when every node reports `cluster_state:ok`. Returns the store URL.
 */
export async function startCluster(t: Test): Promise<{ url: string; nodes: RedisServer[] }> {
  const dir = tempDir(t, 'mailmesh-cluster-');
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await clusterPort();
    const conf = join(dir, `nodes-${port}.conf`);
    nodes.push(await redisServer(t, port, [...PLAIN, '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', conf]));
  }
  const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
  await run('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes']);
  for (const n of nodes) await pollUntil(`cluster_state:ok on ${n.port}`, async () => /cluster_state:ok/.test((await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])).stdout.toString()));
  return { url: `redis-cluster://${addrs.join(',')}`, nodes };
}

/** A master redis-server watched by one Sentinel as `mailmesh-test`. Returns the store URL. */
export async function startSentinel(t: Test): Promise<{ url: string; master: RedisServer; sentinel: RedisServer }> {
  const dir = tempDir(t, 'mailmesh-sentinel-');
  const master = await startRedis(t);
  const conf = join(dir, 'sentinel.conf');
  // Sentinel rewrites its configuration file, so it gets a writable one of its own.
  writeFileSync(conf, [`dir ${dir}`, `sentinel monitor mailmesh-test 127.0.0.1 ${master.port} 1`, 'sentinel down-after-milliseconds mailmesh-test 5000', ''].join('\n'));
  const sentinel = await redisServer(t, await freePort(), [conf, '--sentinel'], /\+monitor master mailmesh-test/);
  return { url: `redis-sentinel://127.0.0.1:${sentinel.port}/mailmesh-test`, master, sentinel };
}

/** Polls `check` every 50 ms, at most 200 times (10 s), until it holds; then fails naming `what`. */
export async function pollUntil(what: string, check: () => Promise<boolean>, tries = 200): Promise<number> {
  const started = Date.now();
  for (let i = 0; i < tries; i++) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A master, one replica (`--replicaof`) and one Sentinel (quorum 1) that considers the master
 * down after `downAfterMs` and fails over to the replica. Resolves once the replica is in sync
 * and the Sentinel knows it. Returns the store URL.
 */
export async function startReplicatedSentinel(
  t: Test,
  downAfterMs = 1000,
): Promise<{ url: string; master: RedisServer; replica: RedisServer; sentinel: RedisServer; currentMaster(): Promise<number> }> {
  const dir = tempDir(t, 'mailmesh-failover-');
  const master = await startRedis(t);
  const replica = await redisServer(t, await freePort(), [...PLAIN, '--dir', tempDir(t, 'mailmesh-replica-'), '--replicaof', '127.0.0.1', String(master.port)]);
  const info = async (port: number, what: string[]) => (await run('redis-cli', ['-p', String(port), ...what])).stdout.toString();
  await pollUntil('the replica to sync', async () => /master_link_status:up/.test(await info(replica.port, ['info', 'replication'])));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `dir ${dir}`,
      `sentinel monitor mailmesh-test 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds mailmesh-test ${downAfterMs}`,
      'sentinel failover-timeout mailmesh-test 10000',
      '',
    ].join('\n'),
  );
  const sentinel = await redisServer(t, await freePort(), [conf, '--sentinel'], /\+monitor master mailmesh-test/);
  await pollUntil('the Sentinel to know the replica', async () => new RegExp(`\\b${replica.port}\\b`).test(await info(sentinel.port, ['sentinel', 'replicas', 'mailmesh-test'])));
  const currentMaster = async () => Number((await info(sentinel.port, ['sentinel', 'get-master-addr-by-name', 'mailmesh-test'])).split('\n')[1]);
  return { url: `redis-sentinel://127.0.0.1:${sentinel.port}/mailmesh-test`, master, replica, sentinel, currentMaster };
}
