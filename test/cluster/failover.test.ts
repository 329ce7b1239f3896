import { randomBytes } from 'node:crypto';
import t from 'tap';
import { startReplicatedSentinel } from '../directory/store/redis-servers.js';
import { messageId, session, sink, startNode, transaction, type Outcome } from './helpers.js';

// Issue 7: the Redis master is SIGKILLed under a gateway node on a Sentinel URL. While there is
// no master the gateway answers 4xx (RCPT pings the store), never a 250 for mail the internal
// server did not get; once Sentinel has promoted the replica, mail flows again.
const TO = 'bob@failover.test';
// The Sentinel waits this long before it calls the master down, so the outage is sure to be
// longer than the gateway's store ping timeout (2 s) and a message sent at once gets its 451.
const DOWN_AFTER_MS = 5000;
const MAX_TRIES = 150; // one every 200 ms: 30 s

t.test('Sentinel failover under a gateway: 4xx while there is no master, no 250 without delivery, mail flows after', async (t) => {
  const redis = await startReplicatedSentinel(t, DOWN_AFTER_MS);
  const inbox = await sink(t);
  // Throwaway servers: the keys go with them.
  const prefix = `mailmesh-test:{${randomBytes(6).toString('hex')}}:`;
  const node = await startNode(t, { url: redis.url, prefix, masterKey: randomBytes(32).toString('base64'), demoDomain: 'failover.test', internalPort: inbox.port });

  const run = randomBytes(4).toString('hex');
  let n = 0;
  const accepted: string[] = [];
  const send = async (): Promise<Outcome> => {
    const id = `<failover-${run}-${n++}@client.test>`;
    const c = await session(node);
    if ('lost' in c) return c;
    const out = await transaction(c, TO, id);
    await c.quit().catch(() => undefined);
    if ('code' in out && out.code === 250) accepted.push(id);
    return out;
  };

  t.same(await send(), { code: 250, stage: 'DATA' }, 'before: 250');
  await inbox.received(1);

  await redis.master.stop();
  const killedAt = Date.now();
  const seen: string[] = [];
  let firstRefusal: number | undefined;
  let flowing: number | undefined;
  for (let i = 0; i < MAX_TRIES && flowing === undefined; i++) {
    const out = await send();
    const at = Date.now() - killedAt;
    seen.push('code' in out ? `${out.code}@${out.stage}` : 'lost');
    t.ok('lost' in out || out.code === 250 || (out.code >= 400 && out.code < 500), `reply ${JSON.stringify(out)} is 250 or 4xx`);
    if (!('code' in out && out.code === 250)) firstRefusal ??= at;
    // Mail flows again: a 250 after a refusal, once the Sentinel names the replica as master.
    else if (firstRefusal !== undefined && (await redis.currentMaster()) === redis.replica.port) flowing = at;
    if (flowing === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  t.ok(firstRefusal !== undefined, 'the gateway refused mail (4xx) while there was no master');
  t.ok(flowing !== undefined, 'mail flowed again after the failover');
  t.equal(await redis.currentMaster(), redis.replica.port, 'the Sentinel promoted the replica');

  t.same(await send(), { code: 250, stage: 'DATA' }, 'a final message: 250');
  // Queue-less: the sink had each message before its 250 went back, so nothing to wait for.
  const got = new Set(inbox.messages.map((m) => messageId(m.data)));
  t.same(
    accepted.filter((id) => !got.has(id)),
    [],
    'every 250 was for a message the internal server has',
  );
  const counts = seen.reduce<Record<string, number>>((a, s) => ({ ...a, [s]: (a[s] ?? 0) + 1 }), {});
  t.comment(
    `master killed; first refusal after ${((firstRefusal ?? 0) / 1000).toFixed(1)} s, mail flowing again after ${((flowing ?? 0) / 1000).toFixed(1)} s ` +
      `(Sentinel down-after ${DOWN_AFTER_MS / 1000} s); replies during the outage: ${JSON.stringify(counts)}`,
  );
});
