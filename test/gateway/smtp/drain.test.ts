import t from 'tap';
import { OUR, Raw, startGateway, startSink } from './helpers.js';

// close() drains (gateway/smtp/listener.ts, docs/operations.md "Signals"): a session still in its
// transaction when timeouts.shutdown ends gets 421 and is closed, and close() resolves.
t.test('close(): a transaction that outlasts timeouts.shutdown gets 421 at the deadline', async (t) => {
  const sink = await startSink(t, { data: 'hang' });
  const { gw, port } = await startGateway(t, { inbound: sink }, { timeouts: { shutdown: 300 } });
  const c = await Raw.open(t, port);
  await c.hello();
  t.same(await c.send(`MAIL FROM:<a@elsewhere.test>`, `RCPT TO:<b@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
  c.write('Subject: x\r\n\r\nnever answered\r\n.\r\n');
  const closed = gw.close();
  const [r] = await c.read(1);
  t.equal(r!.code, 421, 'the deadline: 421');
  await c.closed;
  await closed;
  t.pass('close() resolved once the last session closed');
});

t.test('close(): sessions not in DATA get 421 at once; a message in DATA is taken to the end, gets its 250, then 421', async (t) => {
  const sink = await startSink(t);
  const { gw, port } = await startGateway(t, { inbound: sink }, { timeouts: { shutdown: 600_000 } });
  const idle = await Raw.open(t, port);
  await idle.hello();
  const between = await Raw.open(t, port);
  await between.hello();
  t.same(await between.send(`MAIL FROM:<a@elsewhere.test>`), ['250 2.1.0 Accepted']);
  const sending = await Raw.open(t, port);
  await sending.hello();
  t.same((await sending.send(`MAIL FROM:<a@elsewhere.test>`, `RCPT TO:<b@${OUR}>`, 'DATA')).map((l) => l.slice(0, 3)), ['250', '250', '354']);
  sending.write('Subject: x\r\n\r\nthe first half, ');
  const closed = gw.close();
  t.equal((await idle.read(1))[0]!.code, 421, 'idle: 421 at once');
  t.equal((await between.read(1))[0]!.code, 421, 'between commands of a transaction: 421 at once');
  await Promise.all([idle.closed, between.closed]);
  sending.write('the second half after close()\r\n.\r\n');
  t.equal((await sending.read(1))[0]!.code, 250, 'the message in DATA: its 250');
  t.equal((await sending.read(1))[0]!.code, 421, 'then 421');
  await closed;
  t.match(sink.messages[0]!.data.toString(), 'the first half, the second half after close()');
});
