import t from 'tap';
import { ReplyParser, dotStuff, type Reply } from '../../../gateway/smtp/client.js';
import { countReceived } from '../../../gateway/header.js';
import { isMailmeshError } from '../../../directory/errors.js';
import { seeded as rng } from '../../helpers.js';
import { OUR, Raw, asData, message, show, startGateway, startSink } from './helpers.js';

const SEED = 20240611;

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function randomText(r: () => number, max: number, alphabet?: string): string {
  const n = Math.floor(r() * max);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet ? pick(r, [...alphabet]) : String.fromCharCode(32 + Math.floor(r() * 95));
  return s;
}

/** Splits a string into random chunks, as TCP may. */
function chunks(r: () => number, s: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    const n = 1 + Math.floor(r() * 20);
    out.push(s.slice(i, i + n));
    i += n;
  }
  return out;
}

t.test('ReplyParser: random replies in random chunks parse back exactly (RFC 5321 §4.2)', async (t) => {
  const r = rng(SEED);
  for (let round = 0; round < 300; round++) {
    const replies: Reply[] = [];
    let wire = '';
    for (let k = 1 + Math.floor(r() * 4); k > 0; k--) {
      const code = 200 + Math.floor(r() * 400);
      const lines = Array.from({ length: 1 + Math.floor(r() * 5) }, () => randomText(r, 60));
      replies.push({ code, lines });
      const eol = r() < 0.9 ? '\r\n' : '\n';
      wire += lines.map((l, i) => `${code}${i < lines.length - 1 ? '-' : ' '}${l}${eol}`).join('');
    }
    const p = new ReplyParser();
    const got = chunks(r, wire).flatMap((c) => p.push(Buffer.from(c, 'latin1')));
    // A final line "250 " and a bare "250" both mean an empty text.
    t.same(got, replies, `round ${round}`, { diagnostic: false });
  }
  t.same(new ReplyParser().push('250\r\n'), [{ code: 250, lines: [''] }], 'a code alone is a reply');
});

t.test('ReplyParser: garbage gives NEXT_HOP_PROTOCOL or replies, nothing else', async (t) => {
  const r = rng(SEED + 1);
  let protocolErrors = 0;
  for (let round = 0; round < 2000; round++) {
    const p = new ReplyParser();
    const bytes = Buffer.from(Array.from({ length: Math.floor(r() * 80) }, () => (r() < 0.1 ? 10 : Math.floor(r() * 256))));
    try {
      for (const reply of p.push(bytes)) {
        if (reply.code < 200 || reply.code > 599) t.fail(`impossible code ${reply.code}`);
      }
    } catch (e) {
      if (!isMailmeshError(e, 'NEXT_HOP_PROTOCOL')) t.fail(`unexpected ${String(e)}`);
      protocolErrors++;
    }
  }
  t.ok(protocolErrors > 0, `garbage is refused (${protocolErrors} times)`);
  t.throws(() => new ReplyParser().push('250-a\r\n251 b\r\n'), { code: 'NEXT_HOP_PROTOCOL' }, 'a code change within a reply');
  t.throws(() => new ReplyParser().push('2'.repeat(5000)), { code: 'NEXT_HOP_PROTOCOL' }, 'an endless line');
  t.throws(() => new ReplyParser().push('250-x\r\n'.repeat(300)), { code: 'NEXT_HOP_PROTOCOL' }, 'an endless reply');
  t.throws(() => new ReplyParser().push('150 x\r\n'), { code: 'NEXT_HOP_PROTOCOL' }, 'RFC 5321 §4.2.1 codes start with 2-5');
});

/** Reverses dot-stuffing (what a receiving server does, RFC 5321 §4.5.2). */
function unstuff(data: Buffer): string {
  const s = data.toString('latin1');
  if (!s.endsWith('.\r\n')) throw new Error('no terminator');
  const body = s.slice(0, -3);
  return body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
}

t.test('dotStuff: CRLF line ends, stuffed dots, one terminator; unstuffing gives the message back', async (t) => {
  const r = rng(SEED + 2);
  for (let round = 0; round < 1000; round++) {
    const input = randomText(r, 40, '..a\r\n x');
    const out = dotStuff(Buffer.from(input, 'latin1'));
    const s = out.toString('latin1');
    const normal = input.replace(/\r\n|\r|\n/g, '\r\n');
    const expected = normal === '' || normal.endsWith('\r\n') ? normal : normal + '\r\n';
    if (unstuff(out) !== expected) t.fail(`round ${round}: ${JSON.stringify(input)} → ${JSON.stringify(s)}`);
    if (/\r(?!\n)|(?<!\r)\n/.test(s)) t.fail(`bare CR or LF: ${JSON.stringify(s)}`);
    const lines = s.slice(0, -3).split('\r\n');
    if (lines.some((l) => l === '.')) t.fail(`a lone dot inside: ${JSON.stringify(s)}`);
  }
  t.equal(dotStuff(Buffer.from('.\r\n..x\nend')).toString(), '..\r\n...x\r\nend\r\n.\r\n');
  t.equal(dotStuff(Buffer.alloc(0)).toString(), '.\r\n');
});

t.test('countReceived counts only the header section', async (t) => {
  t.equal(countReceived(Buffer.from('Received: a\r\nreceived : b\r\nX: y\r\n\r\nReceived: in body\r\n')), 2);
  t.equal(countReceived(Buffer.from('no header end')), 0);
});

t.test('the listener answers random garbage lines with 5xx (421 when it gives up) and keeps serving', async (t) => {
  const sink = await startSink(t);
  const { port } = await startGateway(t, { inbound: sink });
  const r = rng(SEED + 3);
  let c = await Raw.open(t, port);
  await c.read();
  const seen = new Set<number>();
  for (let round = 0; round < 150; round++) {
    const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 100) }, () => Math.floor(r() * 256)).filter((b) => b !== 10 && b !== 13));
    c.write(Buffer.concat([bytes, Buffer.from('\r\n')]));
    const [reply] = await c.read();
    seen.add(reply!.code);
    t.ok((reply!.code >= 500 && reply!.code < 600) || reply!.code === 421, `garbage ${round}: ${show(reply!)}`, { diagnostic: false });
    if (reply!.code === 421) {
      await c.closed;
      c = await Raw.open(t, port);
      await c.read();
    }
  }
  t.ok(seen.has(500), 'command not recognized');
  // Garbage inside a transaction: odd recipients and parameters.
  c.write('EHLO fuzz.test\r\n');
  await c.read();
  const alphabet = 'ab@.<>:"\\ =\u00e9[]()';
  for (let round = 0; round < 60; round++) {
    const [mail, rcpt] = await c.send(`MAIL FROM:<${randomText(r, 12, alphabet)}>`, `RCPT TO:<${randomText(r, 16, alphabet)}>${r() < 0.3 ? ' ' + randomText(r, 10, alphabet) : ''}`);
    t.match(mail, /^(250|5\d\d) /, `MAIL ${round}`, { diagnostic: false });
    t.match(rcpt, /^(250|4\d\d|5\d\d) /, `RCPT ${round}`, { diagnostic: false });
    await c.send('RSET');
  }
  // Still serving.
  t.same(await c.send('MAIL FROM:<a@example.org>', `RCPT TO:<b@${OUR}>`, 'DATA'), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '354 End data with <CR><LF>.<CR><LF>']);
  c.write(asData(message('after-fuzz', 'ok')));
  t.equal(show((await c.read())[0]!), '250 2.0.0 Ok: queued as SINK1');
});
