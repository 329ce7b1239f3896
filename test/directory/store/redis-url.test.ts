import t from 'tap';
import { isMailmeshError } from '../../../directory/errors.js';
import { parseRedisUrl, RedisStore } from '../../../directory/store/redis.js';
import { openStore } from '../../../directory/store/open.js';
import { rejectsCode, seeded, throwsCode } from '../../helpers.js';

t.test('standalone URLs go to ioredis as they are', async (t) => {
  t.same(parseRedisUrl('redis://u:p@h:6379/2'), { mode: 'standalone', url: 'redis://u:p@h:6379/2' });
  t.same(parseRedisUrl('rediss://h'), { mode: 'standalone', url: 'rediss://h' });
});

t.test('sentinel URLs: nodes, master name, db, credentials', async (t) => {
  t.same(parseRedisUrl('redis-sentinel://s1:26379,10.0.0.2:26380,[::1]:26381/mymaster?db=3'), {
    mode: 'sentinel',
    nodes: [{ host: 's1', port: 26379 }, { host: '10.0.0.2', port: 26380 }, { host: '::1', port: 26381 }],
    master: 'mymaster',
    db: 3,
    username: undefined,
    password: undefined,
  });
  t.same(parseRedisUrl('redis-sentinel://:p%40ss@s1:1/m'), { mode: 'sentinel', nodes: [{ host: 's1', port: 1 }], master: 'm', db: 0, username: undefined, password: 'p@ss' });
  t.same(parseRedisUrl('redis-sentinel://app:pw@s1:1/m'), { mode: 'sentinel', nodes: [{ host: 's1', port: 1 }], master: 'm', db: 0, username: 'app', password: 'pw' });
});

t.test('cluster URLs: seed nodes and credentials', async (t) => {
  t.same(parseRedisUrl('redis-cluster://a:7000,b:7001'), {
    mode: 'cluster',
    nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }],
    username: undefined,
    password: undefined,
  });
  t.equal((parseRedisUrl('redis-cluster://:secret@a:7000') as { password?: string }).password, 'secret');
});

t.test('bad URLs are CONFIG_INVALID, and the message hides the password', async (t) => {
  for (const bad of [
    'redis-sentinel://s1:26379',
    'redis-sentinel://s1:26379/',
    'redis-sentinel://s1/m',
    'redis-sentinel://s1:0/m',
    'redis-sentinel://s1:70000/m',
    'redis-sentinel://s1:1,/m',
    'redis-sentinel://s1:1/m/x',
    'redis-sentinel://s1:1/m?db=x',
    'redis-sentinel://s1:1/m?db=1&tls=1',
    'redis-sentinel://:%zz@s1:1/m',
    'redis-cluster://a:1/0',
    'redis-cluster://a:1?x=1',
    'redis-cluster://',
    'redis-cluster://a b:1',
    'redis-sentinels://s1:1/m',
  ]) {
    throwsCode(t, () => parseRedisUrl(bad), 'CONFIG_INVALID', bad);
  }
  try {
    parseRedisUrl('redis-cluster://:hunter2@a:1/x');
    t.fail('a cluster URL with a path parsed');
  } catch (e) {
    t.notMatch((e as Error).message, /hunter2/);
  }
  await rejectsCode(t, openStore('redis-cluster://a:1/x', { redisPrefix: 'p:{x}:' }), 'CONFIG_INVALID', 'openStore passes the error on');
});

t.test('fuzz: any string either parses or is CONFIG_INVALID', async (t) => {
  const rnd = seeded(7);
  const pieces = ['redis-sentinel://', 'redis-cluster://', 'redis://', ':', '@', ',', '/', '?', 'db=', '[', ']', '%', '%4', 'h', '1', '65535', '99999', 'm', '&', '#', ' ', '{', '\u00e9'];
  let parsed = 0;
  for (let i = 0; i < 5000; i++) {
    let s = '';
    for (let k = Math.floor(rnd() * 12); k >= 0; k--) s += pieces[Math.floor(rnd() * pieces.length)];
    try {
      const r = parseRedisUrl(s);
      parsed++;
      if (r.mode !== 'standalone') for (const n of r.nodes) if (!(n.port >= 1 && n.port <= 65535 && n.host)) t.fail(`bad node from ${JSON.stringify(s)}`);
    } catch (e) {
      if (!isMailmeshError(e, 'CONFIG_INVALID')) t.fail(`${JSON.stringify(s)}: ${String(e)}`);
    }
  }
  t.ok(parsed > 0, `${parsed} of 5000 parsed`);
});

t.test('an unreachable Sentinel or Cluster is STORE_UNAVAILABLE', async (t) => {
  await rejectsCode(t, new RedisStore('redis-sentinel://127.0.0.1:1/m', { prefix: 'x:{t}:', connectTimeoutMs: 300 }).connect(), 'STORE_UNAVAILABLE', 'sentinel');
  await rejectsCode(t, new RedisStore('redis-cluster://127.0.0.1:1', { prefix: 'x:{t}:', connectTimeoutMs: 300 }).connect(), 'STORE_UNAVAILABLE', 'cluster');
});
