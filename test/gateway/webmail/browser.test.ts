import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { readMessage } from '../../../gateway/webmail/message.js';
import { run, tempDir } from '../../helpers.js';
import { webmailGateway } from './harness.js';

// Headless Debian Chromium drives the whole WebMail flow: attachment → registration → message →
// download → secure reply; then the password page, a wrong password and the lockout.
const h = await webmailGateway(t);
const dir = tempDir(t);
// Screenshots go to docs/ (shown in the README) only when asked for: MAILMESH_SCREENSHOTS=1 npx tap test/gateway/webmail/browser.test.ts
const docs = process.env.MAILMESH_SCREENSHOTS === '1' ? join(import.meta.dirname, '../../../docs') : mkdtempSync(join(tmpdir(), 'mailmesh-shots-'));

async function send(t: Test, n: number, subject: string, body: string, extra: string[] = []): Promise<string> {
  const args = [...extra, '--server', '127.0.0.1', '--port', String(h.smtpPort), '--helo', 'client.alpha.test', '--from', 'alice@alpha.test', '--to', 'bob@outside.test',
    '--header', `Subject: ${subject}`, '--header', `Message-Id: <m${n}@alpha.test>`, '--body', body];
  if (n === 1) args.push('--attach-type', 'application/pdf', '--attach-name', 'report.pdf', '--attach', `@${join(dir, 'report.pdf')}`);
  const r = await run('swaks', args, { allowFail: true });
  t.equal(r.code, 0, 'swaks sent it');
  await h.outside.received(n);
  const mail = h.outside.messages[n - 1]!;
  t.same(mail.to, ['bob@outside.test']);
  const file = (await readMessage(mail.data)).attachments.find((a) => a.name === 'secure-message.html');
  t.ok(file, 'the mail carries secure-message.html');
  const path = join(dir, `secure-message-${n}.html`);
  writeFileSync(path, file!.data);
  return pathToFileURL(path).href;
}

writeFileSync(join(dir, 'report.pdf'), '%PDF-1.4 not really a pdf, but bytes to compare\n');
const browser: Browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  /* Playwright gives a non-persistent browser a new empty --user-data-dir of its own (it refuses the flag). */
});
t.teardown(() => browser.close());

async function openAttachment(url: string): Promise<Page> {
  const page = await (await browser.newContext({ acceptDownloads: true })).newPage();
  await page.goto(url);
  await page.waitForURL(/\/webmail\/open$/);
  return page;
}

t.test('first contact: register, read, download, reply', async (t) => {
  const url = await send(t, 1, 'Quarterly figures', 'Hello Bob,\nthe figures are attached.\nAlice');
  const mail = h.outside.messages[0]!.data.toString('latin1');
  t.notMatch(mail, 'Quarterly figures', 'the subject is not in the notification');
  t.notMatch(mail, 'the figures are attached', 'nor the text');
  const page = await openAttachment(url);
  t.match(await page.textContent('h1'), 'Choose your password');
  await page.screenshot({ path: join(docs, 'webmail-register.png') });

  await page.fill('#p1', 'short');
  await page.fill('#p2', 'short');
  await page.click('button[type=submit]');
  t.match(await page.textContent('.err'), 'does not meet the rules', 'a weak password is refused');
  await page.fill('#p1', 'Correct horse 42');
  await page.fill('#p2', 'Correct horse 42');
  await page.click('button[type=submit]');
  t.match(await page.textContent('#text'), 'the figures are attached');
  t.match(await page.textContent('h1'), 'Quarterly figures');
  await page.screenshot({ path: join(docs, 'webmail-message.png') });

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('form[action=attachment] button')]);
  t.equal(download.suggestedFilename(), 'report.pdf');
  t.same(readFileSync((await download.path())!), readFileSync(join(dir, 'report.pdf')), 'the attachment, byte for byte');

  await page.fill('#r', 'Thanks Alice, received.');
  await page.click('form[action=reply] button');
  t.match(await page.textContent('#note'), 'sent securely to alice@alpha.test');
  await h.inbox.received(1);
  const reply = h.inbox.messages[0]!;
  t.equal(reply.from, 'bob@outside.test');
  t.same(reply.to, ['alice@alpha.test']);
  const got = await readMessage(reply.data);
  t.equal(got.text, 'Thanks Alice, received.');
  t.equal(got.subject, 'Re: Quarterly figures');
  t.match(reply.data.toString(), /^In-Reply-To: <m1@alpha\.test>/m);
});

t.test('later: the password opens a second message; a wrong one is refused; then the lockout', async (t) => {
  const url = await send(t, 2, 'Second', 'The second message.');
  const page = await openAttachment(url);
  t.match(await page.textContent('h1'), 'Enter your password');
  await page.screenshot({ path: join(docs, 'webmail-password.png') });
  await page.fill('#p1', 'wrong password 1');
  await page.click('button[type=submit]');
  t.match(await page.textContent('.err'), 'wrong password');
  await page.fill('#p1', 'Correct horse 42');
  await page.click('button[type=submit]');
  t.match(await page.textContent('#text'), 'The second message.');

  const page2 = await openAttachment(url);
  for (let i = 0; i < 3; i++) {
    await page2.fill('#p1', `wrong password ${i}`);
    await page2.click('button[type=submit]');
    t.match(await page2.textContent('.err'), 'wrong password');
  }
  await page2.fill('#p1', 'Correct horse 42');
  await page2.click('button[type=submit]');
  t.equal(await page2.textContent('#code'), 'WEBMAIL_LOCKED', 'after 3 wrong passwords even the right one is refused');

  await h.webmail.resetRegistration('bob@outside.test');
  const page3 = await openAttachment(url);
  t.match(await page3.textContent('h1'), 'Choose your password', 'after a reset the recipient registers again');
});

t.test('an HTML message: sanitised, in a sandboxed frame, no script runs, nothing remote loads', async (t) => {
  let hits = 0;
  const remote = createServer((_req, res) => {
    hits++;
    res.end('GIF89a');
  });
  await new Promise<void>((resolve) => remote.listen(0, '127.0.0.1', resolve));
  t.teardown(() => remote.close());
  const pixel = `http://127.0.0.1:${(remote.address() as AddressInfo).port}/pixel.gif`;
  const html = `<html><head><title>orig</title><script>document.title='pwned-script'</script></head><body>
<p>Hello <b>Bob</b></p><img src="${pixel}" onerror="document.title='pwned-onerror'"><img src=x onerror="document.title='pwned-img'">
<a href="javascript:document.title='pwned-link'">click</a><a href="https://example.test/">site</a>
<noscript><p title="</noscript><img src=x onerror=document.title='pwned-noscript'>"></noscript>
<svg><style><img src=x onerror="document.title='pwned-svg'"></style></svg><div style="background:url(${pixel}?css)">css</div>
<a href="jav&#x61;script:document.title='pwned-entity'">entity</a>
<math><mtext><table><mglyph><style><img src=x onerror="document.title='pwned-math'"></style></mglyph></table></mtext></math></body></html>`;
  const url = await send(t, 3, 'Rich', html, ['--header', 'Content-Type: text/html; charset=utf-8']);
  const page = await openAttachment(url);
  await page.fill('#p1', 'Correct horse 43');
  await page.fill('#p2', 'Correct horse 43');
  await page.click('button[type=submit]');
  await page.waitForSelector('iframe#html');
  t.equal(await page.getAttribute('iframe#html', 'sandbox'), '', 'sandboxed: no scripts, forms, popups or same origin');
  const served = (await page.getAttribute('iframe#html', 'srcdoc'))!;
  t.match(served, '<p>Hello <b>Bob</b></p>');
  t.match(served, '<a href="https://example.test/"');
  for (const bad of ['script', 'onerror', 'javascript:', pixel, 'pwned']) t.notMatch(served, bad, `the served frame has no ${bad}`);
  const frame = page.frames().find((f) => f !== page.mainFrame())!;
  t.equal((await frame.textContent('p'))?.trim(), 'Hello Bob', 'the frame shows the message');
  t.equal(await frame.evaluate(() => document.title), '', 'no script ran in the frame');
  t.equal(await page.title(), 'mailmesh', 'nor on the page');
  t.equal(hits, 0, 'the remote image was not loaded');
});

t.test('with JavaScript off the attachment shows a button that opens the message', async (t) => {
  const url = await send(t, 4, 'No script here', 'Read me without JavaScript');
  const page = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  await page.goto(url);
  t.notMatch(page.url(), /\/webmail\/open$/, 'nothing was submitted by itself');
  await Promise.all([page.waitForURL(/\/webmail\/open$/), page.click('form#open button[type=submit]')]);
  // bob registered again (with 'Correct horse 43') in the HTML test: the plain password form.
  t.match(await page.textContent('h1'), 'Enter your password', 'the password page, served without script');
  await page.fill('#p1', 'Correct horse 43');
  await page.click('button[type=submit]');
  t.match(await page.textContent('#text'), 'Read me without JavaScript');
});

t.test('the store holds no message content', async (t) => {
  const bytes = Buffer.concat([h.dbFile, h.dbFile + '-wal'].filter(existsSync).map((f) => readFileSync(f)));
  t.ok(bytes.length > 0);
  for (const secret of ['Quarterly', 'figures are attached', 'second message', 'Thanks Alice', 'not really a pdf', 'Correct horse', 'without JavaScript']) {
    t.equal(bytes.indexOf(secret), -1, `"${secret}" is not in the store`);
  }
  t.not(bytes.indexOf('webmail:reg:bob@outside.test'), -1, 'the registration is (the store was inspected)');
});
