import t from 'tap';
import { RedisStore } from '../../../directory/store/redis.js';
import { redisPrefix, rejectsCode, TEST_REDIS_URL } from '../../helpers.js';
import { dumpContract } from './dump-contract.js';
import { kvStoreContract } from './kv-contract.js';
import { logStoreContract } from './log-contract.js';
import { recordStoreContract, subscribeContract } from './record-contract.js';

// A real Redis (CI starts one); every store gets its own key prefix, removed afterwards.
// When Redis is unreachable these tests fail: they are never skipped.
const fresh = async () => {
  const s = await new RedisStore(TEST_REDIS_URL, { prefix: redisPrefix(t) }).connect();
  t.teardown(() => s.close());
  return s;
};
recordStoreContract(t, fresh);
dumpContract(t, fresh);
kvStoreContract(t, fresh);

const shared = async (): Promise<[RedisStore, RedisStore]> => {
  const prefix = redisPrefix(t);
  const pair = await Promise.all([new RedisStore(TEST_REDIS_URL, { prefix }).connect(), new RedisStore(TEST_REDIS_URL, { prefix }).connect()]);
  t.teardown(() => Promise.all(pair.map((s) => s.close())));
  return pair;
};
subscribeContract(t, shared);
// Two connections, as two nodes of a cluster appending at once.
logStoreContract(t, fresh, shared);

t.test('an unreachable Redis is STORE_UNAVAILABLE', async (t) => {
  await rejectsCode(t, new RedisStore('redis://127.0.0.1:1', { prefix: 'x:', connectTimeoutMs: 500 }).connect(), 'STORE_UNAVAILABLE');
});
