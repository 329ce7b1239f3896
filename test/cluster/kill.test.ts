import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { SmtpClient } from '../../gateway/smtp/client.js';
import { TEST_REDIS_URL } from '../helpers.js';
import { clusterPrefix, messageId, session, sink, startNode, transaction, type Node } from './helpers.js';

// Issue 7: two nodes on one Redis, 1,000 messages over both, node 1 SIGKILLed after ~300.
// Queue-less means a 250 is only given once the internal server took the message, so no
// message is lost; a message whose 250 died with the node is sent again (a duplicate).
const TOTAL = 1000;
const KILL_AFTER = 300;
const SENDERS = 10;
const MAX_RETRIES = 300; // over all messages
const TO = 'bob@kill.test';

t.test('SIGKILL of one node mid-traffic: every message arrives, duplicates allowed', async (t) => {
  const prefix = clusterPrefix(t, TEST_REDIS_URL);
  const masterKey = randomBytes(32).toString('base64');
  const inbox = await sink(t);
  const env = { url: TEST_REDIS_URL, prefix, masterKey, demoDomain: 'kill.test', internalPort: inbox.port };
  const one = await startNode(t, env);
  const two = await startNode(t, env); // the same store: kill.test exists already
  const nodes: Node[] = [one, two];

  const run = randomBytes(4).toString('hex');
  const ids = Array.from({ length: TOTAL }, (_, i) => `<kill-${run}-${i}@client.test>`);
  let next = 0;
  let sent = 0;
  let retries = 0;
  let killed: Promise<void> | undefined;
  const failures: string[] = [];
  const refusals: string[] = [];
  const down = new Set<number>();

  async function sender(i: number): Promise<void> {
    let target = i % 2;
    let c: SmtpClient | undefined;
    let mine = 0;
    while (next < TOTAL) {
      const id = ids[next++]!;
      for (let attempt = 0; ; attempt++) {
        if (!c) {
          const s = await session(nodes[target]!);
          if ('lost' in s) {
            failures.push(`connect to node ${target + 1}: ${s.lost}`);
            down.add(target); // like an MTA, it stops trying a node it cannot connect to
          } else c = s;
        }
        const out = c ? await transaction(c, TO, id) : { lost: 'no session' };
        if ('code' in out && out.code === 250) break;
        if ('code' in out && out.code >= 500) throw new Error(`${id}: ${out.code} at ${out.stage}`);
        if ('code' in out) refusals.push(`${out.code} at ${out.stage} from node ${target + 1}`);
        // 4xx or a lost connection: the sender keeps the message and tries the other node.
        c?.close();
        c = undefined;
        if (!down.has(1 - target)) target = 1 - target;
        if (++retries > MAX_RETRIES) throw new Error(`more than ${MAX_RETRIES} retries; last: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, Math.min(20 * (attempt + 1), 200)));
      }
      if (++sent === KILL_AFTER) killed = one.kill();
      // Persistent sessions, alternating nodes: a sender moves to the other node every 10 of its messages.
      if (++mine % 10 === 0 && c && !down.has(1 - target)) {
        await c.quit().catch(() => undefined);
        c = undefined;
        target = 1 - target;
      }
    }
    await c?.quit().catch(() => undefined);
  }

  await Promise.all(Array.from({ length: SENDERS }, (_, i) => sender(i)));
  t.equal(sent, TOTAL, 'every message got a 250');
  t.ok(killed, 'node 1 was killed mid-traffic');
  await killed;
  t.equal(one.child.signalCode, 'SIGKILL');

  const got = inbox.messages.map((m) => messageId(m.data));
  const distinct = new Set(got);
  const sentIds = new Set(ids);
  t.equal(distinct.size, TOTAL, 'the internal server got every message (zero lost)');
  t.same(
    [...distinct].filter((id) => !id || !sentIds.has(id)),
    [],
    'and only messages we sent',
  );
  t.ok(
    inbox.messages.every((m) => m.to.length === 1 && m.to[0] === TO),
    'to the recipient',
  );
  const duplicates = got.length - distinct.size;
  t.ok(duplicates >= 0);
  t.comment(`${TOTAL} sent, ${got.length} received, ${distinct.size} distinct, ${duplicates} duplicates; ${retries} retries (${failures.length} failed connects, ${refusals.length} 4xx: ${[...new Set(refusals)].join('; ')})`);
  t.ok(two.child.exitCode === null && two.child.signalCode === null, 'node 2 still serves');
});
