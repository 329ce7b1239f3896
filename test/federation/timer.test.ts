import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { Directory } from '../../directory/directory.js';
import { Metrics } from '../../directory/metrics.js';
import { SqliteStore } from '../../directory/store/sqlite.js';
import { stubResolver } from '../../federation/dns.js';
import { JoinService } from '../../federation/join.js';
import { Mirror } from '../../federation/mirror.js';
import { tempDir } from '../helpers.js';

// The mirror and re-verification timers own their errors: a failed tick is counted and logged,
// and nothing escapes the timer, not even a logger that throws.

const escaped: unknown[] = [];
const onEscape = (e: unknown) => void escaped.push(e);
process.on('unhandledRejection', onEscape);
process.on('uncaughtException', onEscape);
t.teardown(() => {
  process.off('unhandledRejection', onEscape);
  process.off('uncaughtException', onEscape);
});

const brokenLog = { info: () => undefined, warn: () => { throw new Error('the log is full'); } };

/** Waits (at most about 10 s, not a measurement) until the faults of `face` reach `n`. */
async function faults(m: Metrics, face: string, n: number): Promise<number> {
  const c = m.counter('mailmesh_faults_total', 'Faults by face');
  for (let i = 0; i < 400 && c.get({ face }) < n; i++) await sleep(25);
  return c.get({ face });
}

t.test('a mirror whose peer fails: every tick counted as face="mirror", nothing escapes', async (t) => {
  const peer = http.createServer((_req, res) => res.writeHead(500, { 'content-type': 'application/json' }).end('{}'));
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => peer.close());
  const metrics = new Metrics();
  const d = await Directory.open(new SqliteStore(':memory:'), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 30 } });
  const stop = new Mirror(`http://127.0.0.1:${(peer.address() as { port: number }).port}`, { directory: d, logger: brokenLog }).start(20, metrics);
  t.teardown(stop);
  t.ok((await faults(metrics, 'mirror', 3)) >= 3, 'the failures are counted, and the timer goes on after them');
  t.match(await metrics.render(), /mailmesh_faults_total\{face="mirror"\} \d+/);
  t.same(escaped, [], 'no error escaped the timer');
});

t.test('re-verification on a store that fails: counted as face="reverify", nothing escapes', async (t) => {
  const metrics = new Metrics();
  const store = new SqliteStore(join(tempDir(t), 'closed.db'));
  const d = await Directory.open(store, randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 30 } });
  await store.close();
  const joins = new JoinService({ directory: d, sources: { resolver: stubResolver(['127.0.0.1:1'], { timeoutMs: 100 }), wellKnownBase: () => 'https://127.0.0.1:1', clock: () => new Date() }, logger: brokenLog });
  const stop = joins.startReverify(20, metrics);
  t.teardown(stop);
  t.ok((await faults(metrics, 'reverify', 2)) >= 2, 'counted');
  t.same(escaped, [], 'no error escaped the timer');
});
