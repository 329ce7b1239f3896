import t from 'tap';
import { sealMessage } from '../../../gateway/webmail/crypto.js';
import { attachmentDisposition, fileName, htmlToText, readMessage } from '../../../gateway/webmail/message.js';
import { SmtpClient } from '../../../gateway/smtp/client.js';
import { get } from '../../directory/http/helpers.js';
import { fields, post, webmailGateway } from './harness.js';

// The display side reads the decrypted message with postal-mime: RFC 2231 names, encoded words, charsets.
const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');
const withAttachment = (disposition: string, type = 'application/pdf') => crlf([
  'From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@alpha.test>', 'To: carol@outside.test', 'Subject: =?iso-8859-1?q?Rechnung_f=FCr_M=E4rz?=',
  'Message-ID: <r1@alpha.test>', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '',
  '--b', 'Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: quoted-printable', '', 'Gr=FC=DFe aus K=F6ln', '',
  '--b', `Content-Type: ${type}`, `Content-Disposition: ${disposition}`, 'Content-Transfer-Encoding: base64', '', Buffer.from('%PDF-1.4 bytes').toString('base64'), '',
  '--b--', '',
]);

t.test('RFC 2231 file names, RFC 2047 headers, charsets', async (t) => {
  const m = await readMessage(withAttachment("attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf"));
  t.equal(m.attachments[0]?.name, 'Rechnung März.pdf', "filename*=utf-8''… (RFC 2231 §4)");
  t.equal(m.attachments[0]?.data.toString(), '%PDF-1.4 bytes');
  t.equal(m.attachments[0]?.type, 'application/pdf');
  t.equal(m.from, 'Jürgen Müller <juergen@alpha.test>');
  t.equal(m.subject, 'Rechnung für März');
  t.equal(m.text.trim(), 'Grüße aus Köln', 'quoted-printable in ISO-8859-1');
  t.equal(m.html, undefined, 'a text-only message has no HTML body');
  t.equal(m.messageId, '<r1@alpha.test>');

  const cont = await readMessage(withAttachment("attachment; filename*0*=utf-8''Rechnung%20; filename*1*=M%C3%A4rz; filename*2=.pdf"));
  t.equal(cont.attachments[0]?.name, 'Rechnung März.pdf', 'continuations (RFC 2231 §3)');
  const word = await readMessage(withAttachment('attachment; filename="=?utf-8?b?UmVjaG51bmcgTcOkcnoucGRm?="'));
  t.equal(word.attachments[0]?.name, 'Rechnung März.pdf', 'an encoded word in the quoted name (common practice)');
  const byType = await readMessage(withAttachment('attachment', "application/pdf; name*=utf-8''Rechnung%20M%C3%A4rz.pdf"));
  t.equal(byType.attachments[0]?.name, 'Rechnung März.pdf', 'the Content-Type name parameter');
  const none = await readMessage(withAttachment('attachment'));
  t.equal(none.attachments[0]?.name, 'attachment-1');
});

t.test('file names lose path separators, control and bidi characters', async (t) => {
  t.equal(fileName('../../etc/passwd', 1), '.._.._etc_passwd');
  t.equal(fileName('a\\b\r\nc\x7f', 1), 'a_b__c_');
  t.equal(fileName('invoice\u202Efdp.exe', 1), 'invoice_fdp.exe', 'U+202E RIGHT-TO-LEFT OVERRIDE');
  t.equal([...fileName('é'.repeat(300), 1)].length, 200);
  const m = await readMessage(withAttachment("attachment; filename*=utf-8''..%2F..%2Fx%E2%80%AEfdp.exe"));
  t.equal(m.attachments[0]?.name, '.._.._x_fdp.exe');
});

t.test('Content-Disposition of a download (RFC 6266, RFC 8187)', async (t) => {
  t.equal(attachmentDisposition('Rechnung März.pdf'), `attachment; filename="Rechnung M_rz.pdf"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf`);
  t.equal(attachmentDisposition(`it's (1)*.pdf`), `attachment; filename="it's (1)*.pdf"; filename*=UTF-8''it%27s%20%281%29%2A.pdf`, "' ( ) * are no attr-char");
  t.equal(attachmentDisposition('a"b\\.pdf'), `attachment; filename="a_b_.pdf"; filename*=UTF-8''a%22b%5C.pdf`);
});

t.test('HTML bodies: kept for the frame; the text comes from the HTML when there is no text part', async (t) => {
  const m = await readMessage(crlf(['From: a@alpha.test', 'Content-Type: text/html; charset=utf-8', '', '<p>Hello <b>Bob</b></p><script>x()</script><p>Bye</p>']));
  t.match(m.html, '<b>Bob</b>');
  t.match(m.text, /Hello Bob\s+Bye/);
  t.notMatch(m.text, 'x()');
  const alt = await readMessage(crlf(['From: a@alpha.test', 'Content-Type: multipart/alternative; boundary=b', '', '--b', 'Content-Type: text/plain', '', 'plain', '--b', 'Content-Type: text/html', '', '<i>rich</i>', '--b--', '']));
  t.equal(alt.text.trim(), 'plain');
  t.equal(alt.html?.trim(), '<i>rich</i>');
});

t.test('on the page: the attachment is listed and downloaded under its RFC 2231 name', async (t) => {
  const h = await webmailGateway(t);
  const s = fields(await sealMessage(h.keys, withAttachment("attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf"), {
    recipient: 'carol@outside.test', messageId: '<r1@alpha.test>', expires: Math.floor(h.now.date.getTime() / 1000) + 3600,
  }));
  const opened = await post(h, 'open', s);
  const pw = 'Correct horse 42';
  const page = await post(h, 'register', { ...s, password: pw, password2: pw, csrf: opened.csrf! }, opened.cookie);
  t.equal(page.status, 200);
  t.match(page.text, 'Rechnung März.pdf');
  t.match(page.text, 'Rechnung für März');
  const r = await get(`${h.base}/webmail/attachment`, {
    method: 'POST', body: new URLSearchParams({ ...s, index: '0', csrf: page.csrf! }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: page.cookie! },
  });
  t.equal(r.status, 200);
  t.equal(r.headers['content-disposition'], `attachment; filename="Rechnung M_rz.pdf"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf`);
  t.equal(r.body.toString(), '%PDF-1.4 bytes');
});

t.test('htmlToText: text only, block ends as line breaks, hidden content and comments dropped', async (t) => {
  const cases: [string, string][] = [
    ['<p>Hello <b>Bob</b></p><p>Bye</p>', 'Hello Bob\nBye'],
    ['a<br>b<BR/>c', 'a\nb\nc'],
    ['<SCRIPT>x()</script >y<style>p{}</STYLE>z', 'yz'],
    ['<head><title>t</title></head>body', 'body'],
    ['<!-- hidden -->shown<!-- unclosed', 'shown'],
    ['a < b > c', 'a < b > c'],
    ['a <b', 'a <b'],
    ['<!DOCTYPE html><?xml x?>t', 't'],
    ['&lt;b&gt; &amp;amp; &#x41;&#66; &#0; &#x110000; &#xD800; &unknown;', '<b> &amp; AB \ufffd \ufffd \ufffd &unknown;'],
    ['<script>never closed', ''],
    ['x<div>\n\n\n\n</div>y', 'x\n\ny'],
    ['İ<P>ok</P>x', 'İok\nx'], // toLowerCase would make İ two characters and shift every index
  ];
  for (const [html, want] of cases) t.equal(htmlToText(html), want, html);
});

t.test('a message WebMail could never show is refused at SMTP with 554 5.6.0, not queued for retries', async (t) => {
  const h = await webmailGateway(t);
  const nested = Array.from({ length: 30 }, (_, i) => `--b${i}\r\nContent-Type: multipart/mixed; boundary=b${i + 1}\r\n\r\n`).join('');
  const bad = Buffer.from(`From: alice@alpha.test\r\nTo: bob@outside.test\r\nSubject: deep\r\nMessage-ID: <d1@alpha.test>\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n${nested}--b30\r\n\r\nx\r\n`);
  const c = await SmtpClient.connect({ host: '127.0.0.1', port: h.smtpPort, helo: 'client.alpha.test', tls: 'none' });
  t.teardown(() => c.close());
  t.equal((await c.mail('alice@alpha.test')).code, 250);
  t.equal((await c.rcpt('bob@outside.test')).code, 250);
  const r = await c.data(bad);
  t.equal(r.code, 554);
  t.match(r.lines.join(' '), /5\.6\.0 .*WebMail/);
  t.equal(h.outside.messages.length, 0, 'nothing was sent');
});
