import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Directory } from '../../directory/directory.js';
import { parseDomain } from '../../directory/domain.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { RedisStore } from '../../directory/store/redis.js';
import { MailPolicy } from '../../gateway/gateway.js';
import { captureSink } from '../../cli/demo/loopback.js';
import { SmtpClient } from '../../gateway/smtp/client.js';
import { DEFAULT_POLICY, freePort, run, tempDir } from '../helpers.js';
import { pollUntil, redisServer } from '../directory/store/redis-servers.js';
import { startGateway } from './smtp/helpers.js';

// A gateway whose store is a redis-server this test starts and stops. Mail to alpha.test comes
// in (inbound); mail from alpha.test to beta.test goes out encrypted to beta's key, which a
// KeyDiscovery stub hands out (discovery has its own tests).
async function setup(t: Test) {
  // Every write synced to disk, so that a SIGKILLed server comes back with the keys.
  const redis = await redisServer(t, await freePort(), ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', tempDir(t, 'mailmesh-redis-')]);
  const store = await new RedisStore(`redis://127.0.0.1:${redis.port}`, { prefix: `mm:{${randomBytes(4).toString('hex')}}:`, connectTimeoutMs: 500 }).connect();
  t.teardown(() => store.close());
  const keys = { openpgp: 'curve25519' as const, validDays: 365 };
  const directory = await Directory.open(store, randomBytes(32), { keys });
  await directory.addDomain('alpha.test', { formats: ['pgp-mime'] });
  const peerDir = await Directory.open(new MemoryStore(), randomBytes(32), { keys });
  const beta = await peerDir.addDomain('beta.test', { formats: ['pgp-mime'] });
  const discovery = {
    discover: async () => ({ domain: parseDomain('beta.test'), keys: beta.keys, formats: beta.formats, provenance: { source: 'domain-dns' as const, verified: 'dnssec', at: new Date().toISOString() }, cache: 'miss' as const }),
  };
  const mail = await MailPolicy.create({ directory, discovery, policy: DEFAULT_POLICY, authservId: 'mx.alpha.test', storeTimeoutMs: 500 });
  t.teardown(() => mail.close());
  const sink = await captureSink();
  t.teardown(() => sink.close());
  const { port } = await startGateway(t, { inbound: sink }, { name: 'mx.alpha.test', ...mail.gatewayHooks() });
  return { redis, sink, port, store };
}

const swaks = (port: number, to: string) =>
  run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.alpha.test', '--from', 'a@alpha.test', '--to', to, '--body', 'hello'], { allowFail: true });

t.test('store down: 451 4.3.0 at RCPT (never 250), in both directions; store back: mail flows', async (t) => {
  const { redis, sink, port, store } = await setup(t);
  const before = await swaks(port, 'b@alpha.test');
  t.equal(before.code, 0, before.stdout.toString());
  await sink.received(1);

  await redis.stop();
  for (const to of ['b@alpha.test', 'b@beta.test']) {
    const sent = await swaks(port, to);
    const out = sent.stdout.toString();
    t.not(sent.code, 0, `${to}: refused`);
    // swaks: the RCPT command, then the reply to it on the next line.
    const rcptReply = /-> RCPT TO:.*\n(.*)/.exec(out)?.[1] ?? '';
    t.match(rcptReply, /451 4\.3\.0 The key store is unavailable/, `${to}: 451 at RCPT`);
    t.notMatch(out, /-> DATA/, `${to}: no DATA was sent`);
  }
  t.equal(sink.messages.length, 1, 'nothing was relayed');

  await redis.start();
  // The client reconnects on its own (with a back-off of up to 2 s).
  await pollUntil('the store answers again', () => store.ping().then(() => true, () => false));
  const after = await swaks(port, 'b@beta.test');
  t.equal(after.code, 0, after.stdout.toString());
  await sink.received(2);
  t.match(sink.messages[1]!.data.toString(), /BEGIN PGP MESSAGE/, 'encrypted to beta again');
});

t.test('store lost between RCPT and the end of DATA: 451, nothing relayed', async (t) => {
  const { redis, sink, port } = await setup(t);
  const c = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'client.alpha.test', tls: 'none' });
  t.teardown(() => c.close());
  t.equal((await c.mail('a@alpha.test', [])).code, 250);
  t.equal((await c.rcpt('b@beta.test')).code, 250, 'accepted while the store answers');
  await redis.stop();
  // Encrypting needs alpha's private keys from the store: STORE_UNAVAILABLE, mapped to 451.
  const r = await c.data(Buffer.from('From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: hi\r\n\r\nhello\r\n'));
  t.equal(r.code, 451, r.lines.join(' '));
  t.equal(sink.messages.length, 0, 'nothing was relayed');
});
