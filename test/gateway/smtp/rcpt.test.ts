import t from 'tap';
import { MailmeshError } from '../../../directory/errors.js';
import { createRouter, domainMatcher, ipMatcher } from '../../../gateway/smtp/route.js';
import { gatewayOptions, parseHostPort, type SmtpSettings } from '../../../gateway/smtp/settings.js';
import type { Domain } from '../../../directory/domain.js';
import { throwsCode } from '../../helpers.js';
import { OUR, Raw, asData, closedPort, message, show, startGateway, startSink } from './helpers.js';

const DATA_GO = '354 End data with <CR><LF>.<CR><LF>';

t.test('a recipient the next hop refuses is refused upstream at RCPT time with its code and text', async (t) => {
  const sink = await startSink(t, {
    rcpt: (a) => (a.startsWith('nobody@') ? { code: 550, message: '5.1.1 <nobody@our.test>: user unknown' } : a.startsWith('full@') ? { code: 452, message: '4.2.2 mailbox full' } : undefined),
  });
  const { port, gw, logs } = await startGateway(t, { inbound: sink });
  const c = await Raw.open(t, port);
  await c.hello();
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<one@${OUR}>`, `RCPT TO:<nobody@${OUR}>`, `RCPT TO:<full@${OUR}>`, `RCPT TO:<two@${OUR}>`, 'DATA'), [
    '250 2.1.0 Accepted',
    '250 2.1.5 Accepted',
    '550 5.1.1 <nobody@our.test>: user unknown',
    '452 4.2.2 mailbox full',
    '250 2.1.5 Accepted',
    DATA_GO,
  ]);
  c.write(asData(message('partial', 'hi')));
  t.equal(show((await c.read())[0]!), '250 2.0.0 Ok: queued as SINK1');
  t.same(sink.messages[0]!.to, [`one@${OUR}`, `two@${OUR}`], 'the others went through');
  t.match(gw.stats.recipients, { accepted: 2, refused: 1, deferred: 1 });
  t.match(logs.find((l) => 'outcome' in l), {
    rcpts: [
      { to: `one@${OUR}`, code: 250 },
      { to: `nobody@${OUR}`, code: 550, text: '5.1.1 <nobody@our.test>: user unknown' },
      { to: `full@${OUR}`, code: 452 },
      { to: `two@${OUR}`, code: 250 },
    ],
  });
});

t.test('one route per transaction: a recipient of another route gets 452 4.5.3 and comes through in the next one', async (t) => {
  const inbound = await startSink(t);
  const outbound = await startSink(t);
  const { port, gw } = await startGateway(t, { inbound, outbound });
  const c = await Raw.open(t, port);
  await c.hello();
  const [mail, r1, r2, r3, data] = await c.send('MAIL FROM:<a@our.test>', `RCPT TO:<in1@${OUR}>`, 'RCPT TO:<out@example.net>', `RCPT TO:<in2@${OUR}>`, 'DATA');
  t.same([mail, r1, r3, data], ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  t.match(r2, /^452 4\.5\.3 /, 'RFC 5321 §4.5.3.1.10 deferral for the other route');
  c.write(asData(message('first', 'x')));
  t.equal((await c.read())[0]!.code, 250);
  t.same(inbound.messages[0]!.to, [`in1@${OUR}`, `in2@${OUR}`]);
  // The upstream retries the deferred recipient in a new transaction.
  t.same(await c.send('MAIL FROM:<a@our.test>', 'RCPT TO:<out@example.net>', 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData(message('second', 'x')));
  t.equal((await c.read())[0]!.code, 250);
  t.same(outbound.messages[0]!.to, ['out@example.net']);
  t.match(outbound.messages[0]!.data.toString(), /X-Processed: outbound out@example\.net/);
  t.equal(gw.stats.recipients.otherRoute, 1);
  t.match(gw.stats.messages, { inbound: { relayed: 1 }, outbound: { relayed: 1 } });
});

t.test('the route of a domain is looked up once per transaction, not per recipient', async (t) => {
  const sink = await startSink(t);
  const asked: string[] = [];
  const { port } = await startGateway(t, { inbound: sink }, { route: (domain) => (asked.push(domain), [{ host: '127.0.0.1', port: sink.port, tls: 'none' }]) });
  const c = await Raw.open(t, port);
  await c.hello();
  const replies = await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<one@${OUR}>`, `RCPT TO:<two@${OUR}>`, `RCPT TO:<three@${OUR}>`, 'DATA');
  t.same(replies, ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData(message('three recipients', 'x')));
  t.equal((await c.read())[0]!.code, 250);
  t.same(asked, [OUR], 'one look-up for three recipients');
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<four@${OUR}>`), ['250 2.1.0 Accepted', '250 2.1.5 Accepted']);
  t.same(asked, [OUR, OUR], 'a new transaction looks up again');
});

t.test('relaying from outside to a foreign domain is refused with 550 5.7.1; our domains are open to all', async (t) => {
  const sink = await startSink(t);
  const { port, gw } = await startGateway(t, { inbound: sink }, { isInternal: () => false });
  const c = await Raw.open(t, port);
  await c.hello();
  const [, denied, ok, bad] = await c.send('MAIL FROM:<spam@example.net>', 'RCPT TO:<victim@example.com>', `RCPT TO:<user@${OUR}>`, 'RCPT TO:<no-domain>');
  t.equal(denied, '550 5.7.1 Relaying denied');
  t.equal(ok, '250 2.1.5 Accepted');
  t.match(bad, /^501 5\.1\.3 /);
  t.equal(gw.stats.recipients.relayDenied, 1);
  t.equal(sink.connections, 1, 'a refused recipient opens nothing; the inbound one did');
});

t.test('routing failures: no route, a routing error, an unreachable next hop', async (t) => {
  const sink = await startSink(t);
  const dead = await closedPort();
  const { port, gw } = await startGateway(t, { inbound: sink }, {
    route: (domain) => {
      if (domain === 'nomx.test') return [];
      if (domain === 'dnsfail.test') throw new MailmeshError('NEXT_HOP_UNAVAILABLE', 'SERVFAIL');
      if (domain === 'dead.test') return [{ host: '127.0.0.1', port: dead, tls: 'none' }];
      // Two MX hosts: the first is down, the second works.
      return [{ host: '127.0.0.1', port: dead, tls: 'none' }, { host: '127.0.0.1', port: sink.port, tls: 'none' }];
    },
  });
  const c = await Raw.open(t, port);
  await c.hello();
  const [, nomx, dnsfail, deadr, deadAgain, ok] = await c.send('MAIL FROM:<a@our.test>', 'RCPT TO:<x@nomx.test>', 'RCPT TO:<x@dnsfail.test>', 'RCPT TO:<x@dead.test>', 'RCPT TO:<y@dead.test>', 'RCPT TO:<x@fine.test>');
  t.match(nomx, /^550 5\.1\.2 /);
  t.match(dnsfail, /^451 4\.4\.3 /);
  t.match(deadr, /^451 4\.4\.1 /);
  t.match(deadAgain, /^451 4\.4\.1 /, 'a failed route is not retried within the transaction');
  t.equal(ok, '250 2.1.5 Accepted', 'the next MX host is tried');
  t.equal(gw.stats.nextHop.connectFailures, 2);
  t.same(await c.send('QUIT'), ['221 2.0.0 Bye']);
});

t.test('RSET upstream resets the next-hop transaction; the connection is kept', async (t) => {
  const sink = await startSink(t);
  const { port, logs } = await startGateway(t, { inbound: sink });
  const c = await Raw.open(t, port);
  await c.hello();
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<old@${OUR}>`, 'RSET'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.0.0 Flushed']);
  t.same(await c.send('MAIL FROM:<b@example.org>', `RCPT TO:<new@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', DATA_GO]);
  c.write(asData(message('after-rset', 'x')));
  t.equal((await c.read())[0]!.code, 250);
  t.match(sink.messages[0], { from: 'b@example.org', to: [`new@${OUR}`] }, 'the sink saw only the new transaction');
  t.equal(sink.connections, 1, 'RSET, not a new connection');
  t.match(logs.filter((l) => 'outcome' in l), [{ outcome: 'aborted', rcpts: [{ to: `old@${OUR}` }] }, { outcome: 'relayed' }]);
  // An upstream that goes away mid-transaction: the next hop gets QUIT.
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<x@${OUR}>`), ['250 2.1.0 Accepted', '250 2.1.5 Accepted']);
  c.socket.destroy();
  await Promise.all(sink.closed);
  t.pass('the next-hop session ends with the upstream one');
});

t.test('ipMatcher, domainMatcher, createRouter', async (t) => {
  const m = ipMatcher(['127.0.0.0/8', '10.1.0.0/16', '2001:db8::/32', '192.0.2.7']);
  t.ok(m('127.0.0.1'));
  t.ok(m('::ffff:10.1.2.3'), 'IPv4-mapped IPv6 matches the IPv4 block');
  t.ok(m('2001:db8::1'));
  t.ok(m('192.0.2.7'));
  t.notOk(m('192.0.2.8'));
  t.notOk(m('10.2.0.1'));
  t.notOk(m('not an address'));
  for (const bad of ['10.0.0.0/33', 'example.org', '10.0.0.0/8/1', '::/129', '']) throwsCode(t, () => ipMatcher([bad]), 'CONFIG_INVALID', bad);

  const d = domainMatcher(['Example.ORG', '.corp.test']);
  t.ok(d('example.org' as Domain));
  t.ok(d('mail.corp.test' as Domain));
  t.notOk(d('corp.test' as Domain));
  t.notOk(d('sub.example.org' as Domain));
  throwsCode(t, () => domainMatcher(['not a domain']), 'DOMAIN_INVALID');

  const internal = { host: 'mail.internal', port: 2525 };
  const mx = async (domain: string) => {
    if (domain === 'multi.test') return [{ exchange: 'b.multi.test', priority: 20 }, { exchange: 'a.multi.test.', priority: 10 }];
    if (domain === 'null.test') return [{ exchange: '', priority: 0 }];
    if (domain === 'nomx.test') throw Object.assign(new Error('no data'), { code: 'ENODATA' });
    if (domain === 'nx.test') throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    throw Object.assign(new Error('servfail'), { code: 'ESERVFAIL' });
  };
  const route = createRouter({ internal, mx, mxPort: 2526 });
  t.same(await route('anything.test' as Domain, 'inbound'), [internal]);
  t.same(await route('multi.test' as Domain, 'outbound'), [
    { host: 'a.multi.test', port: 2526, tls: 'may' },
    { host: 'b.multi.test', port: 2526, tls: 'may' },
  ], 'MX by preference, trailing dot removed');
  t.same(await route('nomx.test' as Domain, 'outbound'), [{ host: 'nomx.test', port: 2526, tls: 'may' }], 'RFC 5321 §5.1 implicit MX');
  t.same(await route('null.test' as Domain, 'outbound'), [], 'RFC 7505 null MX');
  t.same(await route('nx.test' as Domain, 'outbound'), []);
  await t.rejects(route('fail.test' as Domain, 'outbound'), { code: 'NEXT_HOP_UNAVAILABLE' });
  const smart = createRouter({ internal, smarthost: { host: 'relay.test', port: 587, tls: 'encrypt' }, mx });
  t.same(await smart('multi.test' as Domain, 'outbound'), [{ host: 'relay.test', port: 587, tls: 'encrypt' }]);
});

t.test('settings: host:port parsing and the options built from the smtp config section', async (t) => {
  t.same(parseHostPort('mail.internal:10025', 'may'), { host: 'mail.internal', port: 10025, tls: 'may' });
  t.same(parseHostPort('[2001:db8::1]:25', 'none'), { host: '2001:db8::1', port: 25, tls: 'none' });
  for (const bad of ['mail.internal', 'host:0', 'host:70000', ':25', '2001:db8::1:25']) throwsCode(t, () => parseHostPort(bad, 'may'), 'CONFIG_INVALID', bad);
  const base: SmtpSettings = {
    host: '127.0.0.1', port: 0, ourDomains: [OUR], internalNetworks: ['10.0.0.0/8'], internalServer: '127.0.0.1:10025', nextHopTls: 'may', mxPort: 25,
    maxMessageBytes: 5000, maxConnections: 3, maxRecipients: 4, nextHopTimeoutSec: 5, dataTimeoutSec: 6, processTimeoutSec: 7,
    idleTimeoutSec: 8, maxCommandLineBytes: 600, drainTimeoutSec: 9, maxConnectionsPerAddress: 2, maxLifetimeSec: 10,
  };
  const o = gatewayOptions({ ...base, smarthost: 'relay.test:587' });
  t.same(await o.route('x.test' as Domain, 'inbound'), [{ host: '127.0.0.1', port: 10025, tls: 'may' }]);
  t.same(await o.route('x.test' as Domain, 'outbound'), [{ host: 'relay.test', port: 587, tls: 'may' }]);
  t.match(o, {
    limits: { size: 5000, connections: 3, recipients: 4 },
    timeouts: { connect: 5000, command: 5000, dataEnd: 6000, process: 7000, idle: 8000 },
    edge: { drainTimeoutMs: 9000, maxConnections: 3, maxConnectionsPerAddress: 2, maxLifetimeMs: 10_000 },
    maxCommandLineBytes: 600,
  });
  throwsCode(t, () => gatewayOptions({ ...base, tlsCert: '/nonexistent.pem' }), 'CONFIG_INVALID', 'cert without key');
  throwsCode(t, () => gatewayOptions({ ...base, tlsCert: '/nonexistent.pem', tlsKey: '/nonexistent.key' }), 'CONFIG_INVALID', 'unreadable files');
});
