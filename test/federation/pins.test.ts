import t from 'tap';
import { RedisStore } from '../../directory/store/redis.js';
import { StorePinStore, type PinEntry } from '../../federation/pins.js';
import { redisPrefix, TEST_REDIS_URL } from '../helpers.js';

t.test('pins in the store are shared by the nodes of a cluster', async (t) => {
  const prefix = redisPrefix(t);
  const node1 = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
  const node2 = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
  t.teardown(async () => {
    await node1.close();
    await node2.close();
  });
  const a = new StorePinStore(node1);
  const b = new StorePinStore(node2);
  t.equal(await b.get('beta.test'), undefined);
  const entry: PinEntry = {
    keys: {},
    at: '2026-11-28T00:00:00.000Z',
    violations: [{ domain: 'beta.test', pinned: 'A'.repeat(40), offered: 'B'.repeat(40), source: 'directory-https', at: '2026-11-28T00:00:01.000Z' }],
  };
  await a.put('beta.test', entry);
  t.same(await b.get('beta.test'), entry, 'node 2 sees the pin and the violation node 1 recorded');
  await b.delete('beta.test');
  t.equal(await a.get('beta.test'), undefined);
});
