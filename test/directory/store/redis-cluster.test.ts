import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import type { Domain } from '../../../directory/domain.js';
import { RedisStore } from '../../../directory/store/redis.js';
import { run, throwsCode } from '../../helpers.js';
import { dumpContract } from './dump-contract.js';
import { kvStoreContract } from './kv-contract.js';
import { logStoreContract } from './log-contract.js';
import { draft, recordStoreContract, subscribeContract } from './record-contract.js';
import { startCluster, startSentinel } from './redis-servers.js';

// Redis Cluster and Sentinel deployments this file starts itself (redis-server, redis-cli).
const prefix = () => `mailmesh-test:{${randomBytes(6).toString('hex')}}:`;

function maker(t: Test, url: string) {
  return async () => {
    const s = await new RedisStore(url, { prefix: prefix() }).connect();
    t.teardown(() => s.close());
    return s;
  };
}

/** Two connections on one prefix, as two nodes of a cluster. */
function pairMaker(t: Test, url: string) {
  return async (): Promise<[RedisStore, RedisStore]> => {
    const p = prefix();
    const pair = await Promise.all([new RedisStore(url, { prefix: p }).connect(), new RedisStore(url, { prefix: p }).connect()]);
    t.teardown(() => Promise.all(pair.map((s) => s.close())));
    return pair;
  };
}

/** A second connection on the same prefix hears the first one's writes (RecordStore.subscribe). */
function propagates(t: Test, url: string) {
  subscribeContract(t, pairMaker(t, url));
}

t.test('on a Redis Cluster of three masters', async (t) => {
  const { url, nodes } = await startCluster(t);
  recordStoreContract(t, maker(t, url));
  dumpContract(t, maker(t, url));
  kvStoreContract(t, maker(t, url));
  propagates(t, url);
  // The log's keys share the prefix's hash tag: its script runs in one slot.
  logStoreContract(t, maker(t, url), pairMaker(t, url));

  t.test('one directory lives in one slot, and destroy() finds it on its master', async (t) => {
    const p = prefix();
    const s = await new RedisStore(url, { prefix: p }).connect();
    t.teardown(() => s.close());
    await s.putRecord(draft('a.example'), { secrets: Buffer.from('k') });
    await s.kvPut('session', 'x');
    const perNode = await Promise.all(nodes.map(async (n) => (await run('redis-cli', ['-p', String(n.port), '--scan', '--pattern', `${p}*`])).stdout.toString().split('\n').filter(Boolean)));
    t.same(perNode.map((keys) => keys.length).sort(), [0, 0, 5], 'all five keys on one master');
    await s.destroy();
    t.equal(await s.serial(), 0);
    t.equal(await s.getRecord('a.example' as Domain), undefined);
    t.equal(await s.kvGet('session'), undefined);
  });

  t.test('a prefix without a hash tag is refused', async (t) => {
    throwsCode(t, () => new RedisStore(url, { prefix: 'mailmesh:dir:' }), 'CONFIG_INVALID');
    throwsCode(t, () => new RedisStore(url, { prefix: 'mailmesh:{}:' }), 'CONFIG_INVALID', 'an empty tag');
  });
});

t.test('on a master watched by a Sentinel', async (t) => {
  const { url } = await startSentinel(t);
  recordStoreContract(t, maker(t, url));
  dumpContract(t, maker(t, url));
  kvStoreContract(t, maker(t, url));
  propagates(t, url);
});
