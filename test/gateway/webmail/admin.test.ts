import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sealMessage } from '../../../gateway/webmail/crypto.js';
import { readMessage } from '../../../gateway/webmail/message.js';
import { get, isUnauthorized } from '../../directory/http/helpers.js';
import { gpgHome, run, tempDir } from '../../helpers.js';
import { fields, post, webmailGateway, type Harness } from './harness.js';

// Administration (CLI and API reset) and registered mail (signed receipts), on real servers.
const TOKEN = 'operator-token-7f3a';
const h = await webmailGateway(t, { adminToken: TOKEN });
const MAIN = new URL('../../../dist/cli/main.js', import.meta.url).pathname;
const future = () => Math.floor(h.now.date.getTime() / 1000) + 3600;

function message(to: string, id: string, extra = ''): Buffer {
  return Buffer.from(`From: Alice <alice@alpha.test>\r\nTo: ${to}\r\nSubject: s\r\nMessage-ID: ${id}\r\n${extra}\r\nsecret text\r\n`);
}

/** Opens a sealed message and registers or signs in; returns the page. */
async function openAndEnter(x: Harness, to: string, id: string, extra = '') {
  const f = fields(await sealMessage(x.keys, message(to, id, extra), { recipient: to, messageId: id, expires: future() }));
  const opened = await post(x, 'open', f);
  const pw = 'Correct horse 42';
  const registering = opened.text.includes('Choose your password');
  const r = await post(x, registering ? 'register' : 'login', { ...f, password: pw, password2: pw, csrf: opened.csrf! }, opened.cookie);
  return { registering, page: r };
}

const del = (x: Harness, address: string, authorization?: string) =>
  get(`${x.base}/v1/webmail/registrations/${encodeURIComponent(address)}`, { method: 'DELETE', headers: authorization ? { authorization } : {} });

t.test('API reset: the token is checked, then the recipient registers again', async (t) => {
  t.ok((await openAndEnter(h, 'carol@outside.test', '<a1@alpha.test>')).registering);
  t.notOk((await openAndEnter(h, 'carol@outside.test', '<a2@alpha.test>')).registering, 'registered: the password page');

  isUnauthorized(t, await del(h, 'carol@outside.test'), 'no token');
  isUnauthorized(t, await del(h, 'carol@outside.test', `Bearer ${TOKEN}x`), 'a wrong token');
  isUnauthorized(t, await del(h, 'carol@outside.test', TOKEN), 'the token without the Bearer scheme');
  t.notOk((await openAndEnter(h, 'carol@outside.test', '<a3@alpha.test>')).registering, 'still registered');

  const ok = await del(h, 'Carol@outside.test', `Bearer ${TOKEN}`);
  t.equal(ok.status, 204, 'the local part is matched without case');
  t.equal(ok.body.length, 0);
  const again = await del(h, 'carol@outside.test', `Bearer ${TOKEN}`);
  t.equal(again.status, 404);
  t.equal((again.json() as { error: { code: string } }).error.code, 'NOT_FOUND');
  t.equal((await del(h, 'not-an-address', `Bearer ${TOKEN}`)).status, 400);
  t.ok((await openAndEnter(h, 'carol@outside.test', '<a4@alpha.test>')).registering, 'after the reset: the registration page');
});

t.test('API reset without a configured token is disabled', async (t) => {
  const off = await webmailGateway(t);
  const r = await del(off, 'carol@outside.test', `Bearer ${TOKEN}`);
  t.equal(r.status, 403);
  t.equal((r.json() as { error: { code: string } }).error.code, 'FEDERATION_DISABLED');
});

t.test('CLI reset: `mailmesh webmail reset <address>` on the same store', async (t) => {
  t.ok(existsSync(MAIN), 'the built CLI (npm run build)');
  t.ok((await openAndEnter(h, 'dave@outside.test', '<c1@alpha.test>')).registering);
  const cwd = tempDir(t);
  const env = { MAILMESH_STORE__URL: `sqlite:${h.dbFile}`, MAILMESH_MASTER_KEY: h.masterKey.toString('base64'), MAILMESH_LOG__PRETTY: 'false' };
  const cli = (address: string) => run('node', [MAIN, 'webmail', 'reset', address], { cwd, env, allowFail: true });
  const first = await cli('dave@outside.test');
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout.toString(), 'dave@outside.test: registration removed');
  const second = await cli('dave@outside.test');
  t.equal(second.code, 1);
  t.match(second.stdout.toString(), 'not registered');
  const bad = await cli('no address');
  t.equal(bad.code, 65, 'bad data: sysexits EX_DATAERR (cli/exit.ts)');
  t.match(bad.stderr, 'ADDRESS_INVALID');
  t.ok((await openAndEnter(h, 'dave@outside.test', '<c2@alpha.test>')).registering, 'after the reset: the registration page');
});

t.test('registered mail: the first opening sends one receipt signed with the sender domain key', async (t) => {
  const before = h.inbox.messages.length;
  const id = '<r1@alpha.test>';
  const first = await openAndEnter(h, 'erin@outside.test', id, 'X-Mailmesh-Registered: yes\r\n');
  t.match(first.page.text, 'secret text');
  await h.inbox.received(before + 1);
  const mail = h.inbox.messages[before]!;
  t.same(mail.to, ['alice@alpha.test'], 'to the sender');
  t.equal(mail.from, '', 'with the null reverse-path');
  const text = (await readMessage(mail.data)).text;
  t.match(text, /^-----BEGIN PGP SIGNED MESSAGE-----/);
  t.match(text, `Message-ID: ${id}`);
  t.match(text, 'Recipient:  erin@outside.test');
  t.match(text, `Opened:     ${h.now.date.toISOString()}`);

  const { gpg, home } = gpgHome(t);
  await gpg(['--import'], (await h.directory.getRecord('alpha.test')).keys.openpgp!.armored);
  const file = join(home, 'receipt.asc');
  writeFileSync(file, text);
  const verify = await run('gpg', ['--batch', '--status-fd', '1', '--verify', file], { env: { GNUPGHOME: home }, allowFail: true });
  t.equal(verify.code, 0, verify.stderr);
  t.match(verify.stdout.toString(), /\[GNUPG:\] GOODSIG/);
  writeFileSync(file, text.replace('erin@outside.test', 'eve@outside.test'));
  const forged = await run('gpg', ['--batch', '--status-fd', '1', '--verify', file], { env: { GNUPGHOME: home }, allowFail: true });
  t.not(forged.code, 0, 'an altered receipt does not verify');
  t.match(forged.stdout.toString(), /\[GNUPG:\] BADSIG/);

  // The page of a later opening comes after any receipt was handed to the gateway (which relays before it answers).
  const second = await openAndEnter(h, 'erin@outside.test', id, 'X-Mailmesh-Registered: yes\r\n');
  t.notOk(second.registering);
  t.match(second.page.text, 'secret text');
  const plain = await openAndEnter(h, 'erin@outside.test', '<r2@alpha.test>');
  t.match(plain.page.text, 'secret text');
  t.equal(h.inbox.messages.length, before + 1, 'no receipt for a second opening, nor for a message that did not ask');
});

t.test('registered mail by configuration: every message gets a receipt on first opening', async (t) => {
  const x = await webmailGateway(t, { registered: true });
  const first = await openAndEnter(x, 'frank@outside.test', '<c1@alpha.test>');
  t.match(first.page.text, 'secret text');
  await x.inbox.received(1);
  t.same(x.inbox.messages[0]!.to, ['alice@alpha.test']);
  t.match((await readMessage(x.inbox.messages[0]!.data)).text, 'Recipient:  frank@outside.test');
});
