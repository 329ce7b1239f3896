import { connect } from 'node:net';
import t from 'tap';
import { sealMessage } from '../../../gateway/webmail/crypto.js';
import { formLimit } from '../../../gateway/webmail/form.js';
import { fields, post, webmailGateway } from './harness.js';

const h = await webmailGateway(t);
const MSG = Buffer.from('From: alice@alpha.test\r\nTo: carol@outside.test\r\nSubject: s\r\nMessage-ID: <f1@alpha.test>\r\n\r\nsecret text\r\n');

/**
 * Posts a form of `size` bytes (Content-Length announced up front), in 64 KiB chunks, and
 * reports the answer's status line and how many body bytes had been written when it came.
 */
function postBig(path: string, size: number): Promise<{ status: number; sent: number; head: string }> {
  const url = new URL(h.base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname);
    let sent = 0;
    let answered = false;
    let got = '';
    s.on('error', (e) => (answered ? undefined : reject(e)));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (answered || !got.includes('\r\n\r\n')) return;
      answered = true;
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1]), sent, head: got.slice(0, got.indexOf('\r\n\r\n')) });
      s.destroy();
    });
    s.on('connect', async () => {
      s.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${size}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 'a=b&'.repeat(16 * 1024));
      while (sent < size && !answered && !s.destroyed) {
        const part = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += part.length;
        if (!s.write(part)) await new Promise((r) => s.once('drain', r).once('close', r));
      }
    });
  });
}

t.test('a 30 MB form to POST /v1/domains is refused before its body is read (the form parser is WebMail’s only)', async (t) => {
  const size = 30_000_000;
  t.ok(size < formLimit(20 * 1024 * 1024), 'the form would fit the WebMail limit of this server');
  const r = await postBig('/v1/domains', size);
  t.ok(r.status >= 400 && r.status < 500, `a 4xx (${r.status})`);
  t.not(r.status, 404);
  t.ok(r.sent < size / 2, `the answer came after ${r.sent} of ${size} bytes: nothing was waiting for the body`);
});

t.test('a form over the WebMail limit gets 413 before it is read; WebMail forms still work', async (t) => {
  const r = await postBig('/webmail/open', formLimit(20 * 1024 * 1024) + 1);
  t.equal(r.status, 413);
  t.ok(r.sent < formLimit(20 * 1024 * 1024) / 2, `refused on its Content-Length, after ${r.sent} bytes`);
  const s = await sealMessage(h.keys, MSG, { recipient: 'carol@outside.test', messageId: '<f1@alpha.test>', expires: Math.floor(h.now.date.getTime() / 1000) + 3600 });
  const opened = await post(h, 'open', fields(s));
  t.equal(opened.status, 200);
  t.match(opened.text, 'Choose your password');
});

t.test('formLimit fits a sealed message of the largest mail with a reply', async (t) => {
  for (const n of [0, 1000, 25 * 1024 * 1024]) {
    const base64 = 4 * Math.ceil((n + 93) / 3);
    t.ok(formLimit(n) > base64 * (1 + 2 / 32) + 100_000 * 9, `${n} bytes of mail`);
  }
});
