import t from 'tap';
import { sealMessage } from '../../../gateway/webmail/crypto.js';
import { seeded } from '../../helpers.js';
import { fields, post as postForm, webmailGateway } from './harness.js';

// Plain HTTP: every forged or replayed request gets a clear page with its stable code.
const h = await webmailGateway(t);
const MSG = Buffer.from('From: alice@alpha.test\r\nTo: carol@outside.test\r\nSubject: s\r\nMessage-ID: <x1@alpha.test>\r\n\r\nsecret text\r\n');
const future = () => Math.floor(h.now.date.getTime() / 1000) + 3600;

const post = (path: string, f: Record<string, string>, cookie?: string) => postForm(h, path, f, cookie);
const sealed = () => sealMessage(h.keys, MSG, { recipient: 'carol@outside.test', messageId: '<x1@alpha.test>', expires: future() });

t.test('a good sealed message opens the registration page with a CSP', async (t) => {
  const r = await post('open', fields(await sealed()));
  t.equal(r.status, 200);
  t.match(r.text, 'Choose your password');
  t.match(String(r.headers['content-security-policy']), "default-src 'none'");
  t.match(r.cookie, /^mailmesh_webmail=/);
});

t.test('tampered ciphertext, another recipient, another message id, an expired message', async (t) => {
  const s = await sealed();
  const data = Buffer.from(s.data, 'base64');
  data[data.length - 20]! ^= 1;
  const tampered = await post('open', { ...fields(s), data: data.toString('base64') });
  t.equal(tampered.status, 400);
  t.equal(tampered.code, 'WEBMAIL_INVALID');
  t.match(tampered.text, 'cannot be opened');
  t.notMatch(tampered.text, 'authentication failed', 'the catalogue text, not the detail (that is in the log)');
  const id = /<code id="request">([^<]+)<\/code>/.exec(tampered.text)?.[1];
  t.match(id, /^[0-9a-f-]{36}$/, 'the page names the request ID');
  t.equal(tampered.headers['x-request-id'], id, 'the same as X-Request-Id');
  const other = await post('open', { ...fields(s), recipient: 'mallory@outside.test' });
  t.equal(other.code, 'WEBMAIL_INVALID', 'a ciphertext for another recipient');
  t.equal((await post('open', { ...fields(s), messageId: '<x2@alpha.test>' })).code, 'WEBMAIL_INVALID');
  t.equal((await post('open', { ...fields(s), expires: String(s.expires + 1) })).code, 'WEBMAIL_INVALID', 'a prolonged expiry');
  const old = await sealMessage(h.keys, MSG, { recipient: 'carol@outside.test', messageId: '<x1@alpha.test>', expires: Math.floor(h.now.date.getTime() / 1000) - 1 });
  const expired = await post('open', fields(old));
  t.equal(expired.status, 403);
  t.equal(expired.code, 'WEBMAIL_EXPIRED');
  t.equal((await post('open', {})).code, 'WEBMAIL_INVALID', 'no fields');
});

t.test('CSRF: a post without the session token, or with another session, is refused', async (t) => {
  const s = fields(await sealed());
  const opened = await post('open', s);
  const pw = { password: 'Correct horse 42', password2: 'Correct horse 42' };
  const noToken = await post('register', { ...s, ...pw }, opened.cookie);
  t.equal(noToken.code, 'WEBMAIL_CSRF');
  t.equal(noToken.status, 403);
  t.equal((await post('register', { ...s, ...pw, csrf: 'forged' }, opened.cookie)).code, 'WEBMAIL_CSRF');
  t.equal((await post('register', { ...s, ...pw, csrf: opened.csrf! })).code, 'WEBMAIL_SESSION', 'the token without the cookie');
  const second = await post('open', s);
  t.equal((await post('register', { ...s, ...pw, csrf: second.csrf! }, opened.cookie)).code, 'WEBMAIL_CSRF', "another session's token");
  t.equal((await post('reply', { ...s, text: 'x', csrf: opened.csrf! }, opened.cookie)).code, 'WEBMAIL_SESSION', 'a reply before the password');
});

t.test('a replayed registration is refused; the password page follows', async (t) => {
  const s = fields(await sealed());
  const opened = await post('open', s);
  const reg = { ...s, password: 'Correct horse 42', password2: 'Correct horse 42', csrf: opened.csrf! };
  const first = await post('register', reg, opened.cookie);
  t.equal(first.status, 200);
  t.match(first.text, 'secret text');
  const replay = await post('register', { ...reg, password: 'Attacker pass 99', password2: 'Attacker pass 99' }, opened.cookie);
  t.equal(replay.status, 409);
  t.equal(replay.code, 'WEBMAIL_REGISTERED');
  const again = await post('open', s);
  const replay2 = await post('register', { ...reg, password: 'Attacker pass 99', password2: 'Attacker pass 99', csrf: again.csrf! }, again.cookie);
  t.equal(replay2.code, 'WEBMAIL_REGISTERED', 'a new session cannot register again either');
  t.match(again.text, 'Enter your password');
  t.equal((await post('login', { ...s, password: 'Attacker pass 99', csrf: again.csrf! }, again.cookie)).status, 403);
  const ok = await post('login', { ...s, password: 'Correct horse 42', csrf: again.csrf! }, again.cookie);
  t.match(ok.text, 'secret text', 'the first password still works');
});

t.test('fuzz: random form fields never crash the pages', async (t) => {
  const rnd = seeded(7);
  const s = fields(await sealed());
  const keys = Object.keys(s) as (keyof typeof s)[];
  for (let i = 0; i < 60; i++) {
    const f: Record<string, string> = { ...s };
    const k = keys[Math.floor(rnd() * keys.length)]!;
    const chars = Array.from({ length: Math.floor(rnd() * 40) }, () => String.fromCharCode(Math.floor(rnd() * 128)));
    f[k] = rnd() < 0.5 ? chars.join('') : f[k]!.slice(0, Math.floor(rnd() * f[k]!.length)) + chars.join('');
    const r = await post('open', f);
    t.ok([200, 400, 403].includes(r.status) && (r.status === 200 || r.code), `fuzz ${i}: ${r.status} ${r.code}`);
  }
});

t.test('guesses sent at once: at most maxAttempts are tried, every one is counted, then the lockout', async (t) => {
  const MSG2 = Buffer.from('From: alice@alpha.test\r\nTo: dave@outside.test\r\nSubject: s\r\nMessage-ID: <x3@alpha.test>\r\n\r\nother text\r\n');
  const s = fields(await sealMessage(h.keys, MSG2, { recipient: 'dave@outside.test', messageId: '<x3@alpha.test>', expires: future() }));
  const opened = await post('open', s);
  t.equal((await post('register', { ...s, password: 'Correct horse 42', password2: 'Correct horse 42', csrf: opened.csrf! }, opened.cookie)).status, 200);
  // Five guesses, each in its own session, all sent before any answer (maxAttempts is 3).
  const sessions = await Promise.all(Array.from({ length: 5 }, () => post('open', s)));
  const guesses = await Promise.all(sessions.map((o, i) => post('login', { ...s, password: `Wrong password ${i}`, csrf: o.csrf! }, o.cookie)));
  // A refusal page carries its code; the wrong-password page (the guess was tried) has none.
  const outcome = guesses.map((r) => r.code ?? (r.status === 403 ? 'tried' : `status ${r.status}`)).sort();
  t.same(outcome, ['WEBMAIL_LOCKED', 'WEBMAIL_LOCKED', 'tried', 'tried', 'tried'], 'three tried, two refused untried');
  // Guesses that came after the lockout was counted are refused before they count; the rest count.
  const count = Number(await h.directory.store.kvGet('webmail:failures:rcpt:dave@outside.test'));
  t.ok(count >= 3 && count <= 5, `every tried guess counted (${count})`);
  const again = await post('open', s);
  const right = await post('login', { ...s, password: 'Correct horse 42', csrf: again.csrf! }, again.cookie);
  t.equal(right.code, 'WEBMAIL_LOCKED', 'even the right password is refused now');
});

t.test('growing delays between wrong passwords, and the end of a lockout (WebMail clock)', async (t) => {
  const d = await webmailGateway(t, { delayMs: 1000, maxAttempts: 3, lockoutSec: 600 });
  const p = (path: string, f: Record<string, string>, cookie?: string) => postForm(d, path, f, cookie);
  const s = fields(await sealMessage(d.keys, MSG, { recipient: 'carol@outside.test', messageId: '<x1@alpha.test>', expires: Math.floor(d.now.date.getTime() / 1000) + 7200 }));
  const o = await p('open', s);
  t.equal((await p('register', { ...s, password: 'Correct horse 42', password2: 'Correct horse 42', csrf: o.csrf! }, o.cookie)).status, 200);
  const login = async (password: string) => {
    const page = await p('open', s);
    const r = await p('login', { ...s, password, csrf: page.csrf! }, page.cookie);
    return r.status === 200 ? 'open' : r.code ?? (r.text.includes('wrong password') ? 'wrong' : `status ${r.status}`);
  };
  const later = (ms: number) => (d.now.date = new Date(d.now.date.getTime() + ms));
  t.equal(await login('Wrong password 1'), 'wrong');
  t.equal(await login('Correct horse 42'), 'RATE_LIMITED', 'within 1 s of the first failure: wait');
  later(1000);
  t.equal(await login('Wrong password 2'), 'wrong');
  later(1000);
  t.equal(await login('Correct horse 42'), 'RATE_LIMITED', 'after the second failure the wait is 2 s');
  later(1000);
  t.equal(await login('Wrong password 3'), 'wrong');
  t.equal(await login('Correct horse 42'), 'WEBMAIL_LOCKED', 'the third failure locks');
  later(599_000);
  t.equal(await login('Correct horse 42'), 'WEBMAIL_LOCKED', 'still locked 599 s after it');
  later(1000);
  t.equal(await login('Correct horse 42'), 'open', 'the lockout is over: the right password opens');
  t.equal(await login('Wrong password 4'), 'wrong', 'and the counter starts again');
});
