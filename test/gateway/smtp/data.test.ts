import t, { type Test } from 'tap';
import { OUR, Raw, asData, markProcessed, message, show, startGateway, startSink, type Sink } from './helpers.js';

const DATA_GO = '354 End data with <CR><LF>.<CR><LF>';

/** One transaction to `b@our.test`; returns the reply to the final dot. */
async function transaction(t: Test, c: Raw, subject = 'test'): Promise<string> {
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<b@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData(message(subject, 'body')));
  return show((await c.read())[0]!);
}

for (const refusal of [
  { code: 451, message: '4.7.1 greylisted, try later' },
  { code: 554, message: '5.7.1 message refused as spam' },
]) {
  t.test(`the next hop answers the message with ${refusal.code}: passed through`, async (t) => {
    const sink = await startSink(t, { data: refusal });
    const { port, gw, logs } = await startGateway(t, { inbound: sink });
    const c = await Raw.open(t, port);
    await c.hello();
    t.equal(await transaction(t, c), `${refusal.code} ${refusal.message}`);
    const outcome = refusal.code === 451 ? 'deferred' : 'rejected';
    t.equal(gw.stats.messages.inbound[outcome], 1);
    t.match(logs.find((l) => 'outcome' in l), { outcome, reply: `${refusal.code} ${refusal.message}`, nextHopReply: `${refusal.code} ${refusal.message}` });
    // The session goes on: the next hop was reset, a new transaction is refused the same way, not by a protocol error.
    t.equal(await transaction(t, c, 'again'), `${refusal.code} ${refusal.message}`);
    t.equal(sink.connections, 1);
  });
}

async function failing(t: Test, behaviour: Parameters<typeof startSink>[1], timeouts = {}): Promise<{ reply: string; sink: Sink; logs: object[]; c: Raw }> {
  const sink = await startSink(t, behaviour);
  const { port, gw, logs } = await startGateway(t, { inbound: sink }, { timeouts: { shutdown: 200, ...timeouts } });
  const c = await Raw.open(t, port);
  await c.hello();
  const reply = await transaction(t, c);
  t.equal(gw.stats.messages.inbound.failed, 1, 'counted as failed');
  return { reply, sink, logs, c };
}

t.test('the next hop never answers the final dot: 451 4.3.0 after the configured timeout', async (t) => {
  const { reply, logs } = await failing(t, { data: 'hang' }, { dataEnd: 300 });
  t.match(reply, /^451 4\.3\.0 /);
  t.match(logs.find((l) => 'outcome' in l), { outcome: 'failed', err: /did not answer within 300 ms/ });
});

t.test('the next hop drops the connection in the middle of the message: 451 4.3.0', async (t) => {
  const { reply, logs, sink } = await failing(t, { data: 'drop' });
  t.match(reply, /^451 4\.3\.0 /);
  t.equal(sink.messages.length, 0);
  t.match(logs.find((l) => 'outcome' in l), { outcome: 'failed', err: /connection closed|ECONNRESET|EPIPE/ });
});

t.test('process() throws: 451 4.3.0, nothing is relayed, the session goes on', async (t) => {
  const sink = await startSink(t);
  let calls = 0;
  const { port, gw, logs } = await startGateway(t, { inbound: sink }, {
    process: async (m, env) => {
      if (++calls === 1) throw new Error('no key for this domain');
      return markProcessed(m, env);
    },
  });
  const c = await Raw.open(t, port);
  await c.hello();
  t.match(await transaction(t, c), /^451 4\.3\.0 /);
  t.equal(sink.messages.length, 0);
  t.match(logs.find((l) => 'outcome' in l), { outcome: 'failed', code: 'INTERNAL', err: /no key for this domain/ });
  t.equal(await transaction(t, c, 'second'), '250 2.0.0 Ok: queued as SINK1', 'the next hop was reset and takes the next message');
  t.equal(sink.connections, 1);
  t.equal(gw.stats.messages.inbound.failed, 1);
  t.equal(gw.stats.messages.inbound.relayed, 1);
});

t.test('process() takes too long: 451 4.3.0 and its signal is aborted', async (t) => {
  const sink = await startSink(t);
  let signal: AbortSignal | undefined;
  const { port, logs } = await startGateway(t, { inbound: sink }, {
    timeouts: { process: 200, shutdown: 200 },
    process: (_m, _env, s) => {
      signal = s;
      return new Promise(() => undefined);
    },
  });
  const c = await Raw.open(t, port);
  await c.hello();
  t.match(await transaction(t, c), /^451 4\.3\.0 /);
  t.equal(signal?.aborted, true);
  t.match(logs.find((l) => 'outcome' in l), { outcome: 'failed', code: 'PROCESS_TIMEOUT' });
});

t.test('SIZE: a declared size over the limit gets 552 at MAIL; an oversized message gets 552 5.3.4', async (t) => {
  const sink = await startSink(t);
  const { port, gw } = await startGateway(t, { inbound: sink }, { limits: { size: 1000 } });
  const c = await Raw.open(t, port);
  const ehlo = await c.hello();
  t.ok(ehlo.includes('SIZE 1000'));
  const [mail] = await c.send('MAIL FROM:<a@example.org> SIZE=1001');
  t.match(mail, /^552 5\.3\.4 /);
  t.same(await c.send('MAIL FROM:<a@example.org> SIZE=900', `RCPT TO:<b@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData(message('big', 'x'.repeat(998), 'y'.repeat(500))));
  t.match(show((await c.read())[0]!), /^552 5\.3\.4 /);
  t.equal(sink.messages.length, 0);
  t.equal(gw.stats.messages.inbound.too_big, 1);
  t.equal(await transaction(t, c, 'small'), '250 2.0.0 Ok: queued as SINK1', 'the next transaction works');
});

t.test('a message with too many Received headers is refused as a loop (RFC 5321 §6.3)', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink }, { limits: { hops: 3 } });
  const c = await Raw.open(t, port);
  await c.hello();
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<b@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData('Received: from a\r\nReceived: from b\r\nReceived: from c\r\nReceived: from d\r\n' + message('loop', 'x')));
  t.match(show((await c.read())[0]!), /^554 5\.4\.6 /);
  t.equal(sink.messages.length, 0);
});

t.test('more recipients than the limit get 452 4.5.3; more connections than the limit get 421', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink }, { limits: { recipients: 2, connections: 1 } });
  const c = await Raw.open(t, port);
  await c.hello();
  const r = await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<b1@${OUR}>`, `RCPT TO:<b2@${OUR}>`, `RCPT TO:<b3@${OUR}>`);
  t.match(r[3], /^452 4\.5\.3 /);
  const second = await Raw.open(t, port);
  t.match(show((await second.read())[0]!), /^421 /);
  await second.closed;
});
