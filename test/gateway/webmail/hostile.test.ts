import t from 'tap';
import { decodeWords } from 'postal-mime';
import { parseForm, sealedFrom } from '../../../gateway/webmail/form.js';
import { firstAddress, htmlToText, readMessage } from '../../../gateway/webmail/message.js';
import { sanitizeHtml } from '../../../gateway/webmail/sanitize.js';
import { fill, linear } from './linear.js';

// Every parser a stranger's bytes reach in WebMail, on 1 MB adversarial input: linear time,
// shown as the ratio of a 1 MB to a 10 KB input (test/gateway/webmail/linear.ts).
const mail = (head: string, body: string) => Buffer.from(`From: a@alpha.test\r\nTo: b@outside.test\r\nSubject: s\r\n${head}\r\n${body}`);
const html = (body: string) => mail('Content-Type: text/html; charset=utf-8\r\n', body);

const HTML_UNITS = ['<', '<a ', '<a href=x', '<!--', '<script', '<script>', '<style', '<br', '<li', '</', '<x y="', '&#', '&#x1'.repeat(2), '<!', '< >', 'a \t', '\n'];

t.test('htmlToText, and the text of an HTML body read from a message', async (t) => {
  for (const unit of HTML_UNITS) await linear(t, `htmlToText of ${JSON.stringify(unit)}…`, (n) => fill(unit, n), htmlToText);
  for (const unit of HTML_UNITS.slice(0, 6)) await linear(t, `html body of ${JSON.stringify(unit)}…`, (n) => html(fill(unit, n)), readMessage);
});

t.test('firstAddress on a From of 1 MB', async (t) => {
  for (const unit of ['a@', 'a@a@', '<a@a', '<', '"', '"a@a', 'a@a,', '(', '\\', '<>', ' ', 'a@a.b ']) {
    await linear(t, `From of ${JSON.stringify(unit)}…`, (n) => fill(unit, n), firstAddress);
  }
});

t.test('headers and bodies: encoded words, quoted-printable, parameters, parts', async (t) => {
  await linear(t, 'Subject of =?…', (n) => mail(`Subject: ${fill('=?', n)}\r\n`, 'x'), readMessage);
  await linear(t, 'Subject of =?utf-8?q?…', (n) => mail(`Subject: ${fill('=?utf-8?q?a', n)}\r\n`, 'x'), readMessage);
  await linear(t, 'a folded header of 1 MB', (n) => mail(`X-Long: ${fill('a\r\n ', n)}\r\n`, 'x'), readMessage);
  await linear(t, 'decodeWords of =?…', (n) => fill('=?a?b?', n), decodeWords);
  await linear(t, 'quoted-printable spaces without a line end', (n) => mail('Content-Transfer-Encoding: quoted-printable\r\n', fill(' ', n)), readMessage);
  await linear(t, 'quoted-printable of =', (n) => mail('Content-Transfer-Encoding: quoted-printable\r\n', fill('=', n)), readMessage);
  await linear(t, 'filename*N* continuations', (n) => mail(`Content-Type: application/pdf\r\nContent-Disposition: attachment; ${fill('filename*0*=%41; ', n)}\r\n`, 'x'), readMessage);
  await linear(t, 'one long body line', (n) => mail('', fill('a', n)), readMessage);
  await linear(t, 'many empty parts', (n) => mail('Content-Type: multipart/mixed; boundary=b\r\n', fill('--b\r\n\r\n', n)), readMessage);
  await linear(t, 'nested multiparts', (n) => mail('Content-Type: multipart/mixed; boundary=b\r\n', fill('--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n', n)), readMessage);
});

t.test('the HTML sanitiser', async (t) => {
  for (const unit of ['<', '<a ', '<div>', '<div></div>', '<p title="', '<!--', '<svg>', '<svg><path>', '<math><mi>', '<a href="javascript:', '&#106;', '<table><tr><td>', '<form>', '<noscript>', '<p><b>', '<img src="data:image/png;base64,']) {
    await linear(t, `HTML of ${JSON.stringify(unit)}…`, (n) => fill(unit, n), sanitizeHtml);
  }
});

t.test('form fields: as URLSearchParams reads them, in linear time, at most 64', async (t) => {
  for (const s of ['a=1&b=2', 'a=%zz&b=%C3%A4', 'x', '=y', 'a=b=c', '&&a&', 'a+b=c+d', '%E4=%FF', 'a=1&a=2', '%2', 'a=%', 'text=Gr%C3%BC%C3%9Fe%0D%0A+%F0%9F%99%82']) {
    t.same({ ...parseForm(s) }, Object.fromEntries(new URLSearchParams(s)), s);
  }
  t.equal(Object.getPrototypeOf(parseForm('__proto__=x')), null, 'no prototype to pollute');
  t.equal(parseForm('__proto__=x')['__proto__'], 'x');
  t.throws(() => parseForm('a=1&'.repeat(65)), { code: 'BAD_REQUEST' });
  t.equal(Object.keys(parseForm('a=1&'.repeat(64))).length, 1);
  for (const unit of ['a=b&', '%', '%2', '%41', '&', '=', '+']) await linear(t, `form body of ${JSON.stringify(unit)}…`, (n) => fill(unit, n), parseForm);
  await linear(t, 'sealed data that is almost base64', (n) => ({ recipient: 'b@outside.test', messageId: '<m@a>', expires: '1', data: fill('A', n, '', '!') }), sealedFrom);
});

t.test('limits: a header section over 256 KiB, MIME nesting over 20 and too many parts are refused with WEBMAIL_INVALID', async (t) => {
  const refused = async (m: Buffer, why: string) => {
    const e = await readMessage(m).then(() => undefined, (err: { code?: string }) => err);
    t.equal(e?.code, 'WEBMAIL_INVALID', why);
  };
  await refused(mail(`X-Long: ${fill('a', 300 * 1024)}\r\n`, 'x'), 'a header section over 256 KiB');
  const nested = Array.from({ length: 30 }, (_, i) => `--b${i}\r\nContent-Type: multipart/mixed; boundary=b${i + 1}\r\n\r\n`).join('');
  await refused(mail('Content-Type: multipart/mixed; boundary=b0\r\n', `${nested}--b30\r\n\r\nx\r\n`), 'nesting over 20');
  t.equal((await readMessage(mail('Content-Type: multipart/mixed; boundary=b0\r\n', `${nested.split('--b').slice(0, 16).join('--b')}--b15\r\n\r\ndeep text\r\n`))).text.trim(), 'deep text', 'nesting of 15 is read');
  await refused(mail('Content-Type: multipart/mixed; boundary=b\r\n', fill('--b\r\n\r\nx\r\n', 1001 * 10)), 'over 1000 parts');
});
