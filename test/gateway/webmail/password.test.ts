import t from 'tap';
import { sealMessage } from '../../../gateway/webmail/crypto.js';
import { checkParams, checkPassword, hashPassword, needsRehash, SCRYPT, SCRYPT_PREVIOUS, verifyPassword } from '../../../gateway/webmail/password.js';
import { rejectsCode, throwsCode } from '../../helpers.js';
import { fields, post, webmailGateway } from './harness.js';

const PW = 'Correct horse 42';

t.test('new hashes use at least OWASP’s scrypt parameters (N=2^17, r=8, p=1) and verify', async (t) => {
  t.ok(SCRYPT.N >= 2 ** 17 && SCRYPT.r >= 8 && SCRYPT.p >= 1, JSON.stringify(SCRYPT));
  const h = await hashPassword(PW);
  t.match(h, /^scrypt\$131072\$8\$1\$/, 'the parameters travel with the hash');
  t.ok(await verifyPassword(PW, h));
  t.notOk(await verifyPassword(PW + 'x', h));
  t.notOk(needsRehash(h));
});

t.test('hashes with the previous parameters keep verifying, and are due for a rehash', async (t) => {
  const old = await hashPassword(PW, SCRYPT_PREVIOUS);
  t.match(old, /^scrypt\$32768\$8\$1\$/);
  t.ok(await verifyPassword(PW, old));
  t.ok(needsRehash(old));
});

t.test('stored parameters outside the accepted range are refused with a stable code, before any work', async (t) => {
  const good = await hashPassword(PW, { N: 1 << 14, r: 8, p: 1 });
  const [, , , , salt, hash] = good.split('$');
  const forged = (n: number | string, r: number | string, p: number | string) => ['scrypt', n, r, p, salt, hash].join('$');
  for (const [n, r, p, why] of [
    [2 ** 30, 8, 1, 'N = 2^30'],
    [2 ** 20, 8, 1, 'N = 2^20 (1 GiB)'],
    [2 ** 17, 1024, 1, 'r = 1024'],
    [2 ** 17, 8, 64, 'p = 64'],
    [2 ** 17 + 1, 8, 1, 'N not a power of two'],
    [2 ** 10, 8, 1, 'N below the floor'],
    [0, 8, 1, 'N = 0'],
    ['1e9', 8, 1, 'N in exponent notation'],
    [2 ** 17, -8, 1, 'negative r'],
  ] as const) {
    await rejectsCode(t, verifyPassword(PW, forged(n, r, p)), 'WEBMAIL_HASH_UNSUPPORTED', why);
  }
  await rejectsCode(t, verifyPassword(PW, 'bcrypt$2b$...'), 'WEBMAIL_HASH_UNSUPPORTED', 'another scheme');
  await rejectsCode(t, verifyPassword(PW, `${good}$extra`), 'WEBMAIL_HASH_UNSUPPORTED', 'extra parts');
  await rejectsCode(t, verifyPassword(PW, good.replace(/\$[^$]+$/, '$AAAA')), 'WEBMAIL_HASH_UNSUPPORTED', 'a short hash');
  throwsCode(t, () => checkParams({ N: 2 ** 19, r: 8, p: 1 }), 'WEBMAIL_HASH_UNSUPPORTED', 'new hashes are bounded too');
});

t.test('on a server: a hash with N=2^30 in the store gives a page with the stable code; an old hash is rehashed at login', async (t) => {
  const h = await webmailGateway(t);
  const store = h.directory.store;
  const open = async (to: string, id: string) => {
    const msg = Buffer.from(`From: alice@alpha.test\r\nTo: ${to}\r\nSubject: s\r\nMessage-ID: ${id}\r\n\r\nsecret text\r\n`);
    const f = fields(await sealMessage(h.keys, msg, { recipient: to, messageId: id, expires: Math.floor(h.now.date.getTime() / 1000) + 3600 }));
    return { f, opened: await post(h, 'open', f) };
  };
  const good = await hashPassword(PW, { N: 1 << 14, r: 8, p: 1 });
  const [, , , , salt, hash] = good.split('$');
  await store.kvPut('webmail:reg:dave@outside.test', JSON.stringify({ hash: ['scrypt', 2 ** 30, 8, 1, salt, hash].join('$'), at: 'x' }));
  const a = await open('dave@outside.test', '<p1@alpha.test>');
  t.match(a.opened.text, 'Enter your password');
  const r = await post(h, 'login', { ...a.f, password: PW, csrf: a.opened.csrf! }, a.opened.cookie);
  t.equal(r.code, 'WEBMAIL_HASH_UNSUPPORTED');
  t.equal(r.status, 500);

  const old = await hashPassword(PW, SCRYPT_PREVIOUS);
  await store.kvPut('webmail:reg:erin@outside.test', JSON.stringify({ hash: old, at: 'x' }));
  const b = await open('erin@outside.test', '<p2@alpha.test>');
  const wrong = await post(h, 'login', { ...b.f, password: PW + 'x', csrf: b.opened.csrf! }, b.opened.cookie);
  t.equal(wrong.status, 403, 'a wrong password');
  t.equal(JSON.parse((await store.kvGet('webmail:reg:erin@outside.test'))!).hash, old, 'a wrong password rehashes nothing');
  const ok = await post(h, 'login', { ...b.f, password: PW, csrf: b.opened.csrf! }, b.opened.cookie);
  t.equal(ok.status, 200);
  const now = JSON.parse((await store.kvGet('webmail:reg:erin@outside.test'))!) as { hash: string };
  t.not(now.hash, old);
  t.match(now.hash, /^scrypt\$16384\$8\$1\$/, 'rehashed with the configured parameters');
  const c = await open('erin@outside.test', '<p3@alpha.test>');
  t.equal((await post(h, 'login', { ...c.f, password: PW, csrf: c.opened.csrf! }, c.opened.cookie)).status, 200, 'the new hash verifies');
});

t.test('a password of megabytes is refused at registration and is simply wrong at login, before any hashing', async (t) => {
  const huge = 'Aa1!'.repeat(2_500_000);
  throwsCode(t, () => checkPassword(huge, 'carol@outside.test'), 'WEBMAIL_WEAK_PASSWORD');
  throwsCode(t, () => checkPassword('Aa1!x'.repeat(41), 'carol@outside.test'), 'WEBMAIL_WEAK_PASSWORD', '205 characters');
  checkPassword('Aa1!x'.repeat(40), 'carol@outside.test');
  t.pass('200 characters are fine');
  const h = await hashPassword(PW, { N: 1 << 14, r: 8, p: 1 });
  t.equal(await verifyPassword(huge, h), false);
  t.equal(await verifyPassword('😀'.repeat(200), await hashPassword('😀'.repeat(200), { N: 1 << 14, r: 8, p: 1 })), true, '200 astral characters (400 code units) still verify');
});
