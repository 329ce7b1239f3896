import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { Directory } from '../../directory/directory.js';
import { RedisStore } from '../../directory/store/redis.js';
import { StorePinStore } from '../../federation/pins.js';
import type { CaptureSink } from '../../cli/demo/loopback.js';
import { SmtpClient } from '../../gateway/smtp/client.js';
import { WebmailKeys } from '../../gateway/webmail/crypto.js';
import { readMessage } from '../../gateway/webmail/message.js';
import { domainKeyOf } from '../../gateway/webmail/receipt.js';
import { get } from '../directory/http/helpers.js';
import { webmailNode } from '../gateway/webmail/harness.js';
import { TEST_REDIS_URL } from '../helpers.js';
import { clusterPrefix, sink } from './helpers.js';

// Issue 7: two gateway nodes on one Redis (one prefix, one master key), each with its own
// Directory, DNS face, gateway, WebMail and HTTP server, as two processes would have. Both are
// configured with the cluster's one public WebMail URL, as behind a load balancer; the test
// plays the load balancer and the recipient's browser (plain HTTP) and picks the node of every
// request. A message sent through one node opens on the other, registration, password, session
// and failure counter are shared, and Redis holds no message content.
const PUBLIC = 'https://webmail.alpha.test';
const PASSWORD = 'Correct horse 42';
const MAX_ATTEMPTS = 3;
const TO = 'bob@outside.test';

interface ClusterNode {
  name: string;
  /** Where the load balancer reaches this node's HTTP server. */
  base: string;
  smtpPort: number;
}

/**
 * One node: its own connection to the store, Directory (alpha.test is made by the first node,
 * found by the second, like `demo.domain`), DNS face (its discovery's resolver: it knows no key of
 * an outside domain), WebMail with its own WebmailKeys, HTTP server and gateway. Internal mail
 * goes to `inbox`, mail for outside domains to `outside`.
 */
async function startNode(t: Test, name: string, prefix: string, masterKey: Buffer, inbox: CaptureSink, outside: CaptureSink): Promise<ClusterNode> {
  const store = await new RedisStore(TEST_REDIS_URL, { prefix }).connect();
  t.teardown(() => store.close());
  const directory = await Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 365 } });
  if (!(await directory.findRecord('alpha.test'))) await directory.addDomain('alpha.test');
  const { base, smtpPort } = await webmailNode(t, {
    directory,
    webmail: {
      baseUrl: PUBLIC, language: 'en', expiryDays: 30, sessionSec: 900, maxAttempts: MAX_ATTEMPTS, maxClientAttempts: 20, lockoutSec: 900, delayMs: 0,
      store, keys: await WebmailKeys.open(store, masterKey), name: `${name}.alpha.test`, receiptKey: domainKeyOf(directory),
    },
    pins: new StorePinStore(store),
    inbox,
    outside,
  });
  return { name, base, smtpPort };
}

/** A form of a page: its action resolved against the page's URL, and its hidden fields. */
interface Form {
  action: URL;
  fields: Record<string, string>;
}

/** Attribute values as the pages escape them (gateway/webmail/i18n.ts `esc`: numeric character references). */
const unescape = (s: string) => s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))).replace(/&amp;/g, '&');

/** The first form of an HTML page (our pages have one form, or the reply form last). */
function formOf(html: string, url: URL): Form | undefined {
  const m = /<form [^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
  if (!m) return undefined;
  const fields = Object.fromEntries([...m[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((f) => [f[1]!, unescape(f[2]!)]));
  return { action: new URL(unescape(m[1]!), url), fields };
}

/**
 * The recipient's browser behind the load balancer: keeps the WebMail cookie and submits a
 * form's hidden fields plus what the user typed; the request for the public URL goes to `node`.
 */
class Browser {
  cookie?: string;

  async submit(node: ClusterNode, form: Form, typed: Record<string, string> = {}) {
    if (form.action.origin !== PUBLIC || !form.action.pathname.startsWith('/webmail/')) throw new Error(`a form posts outside the WebMail pages: ${form.action}`);
    const r = await get(node.base + form.action.pathname, {
      method: 'POST', body: new URLSearchParams({ ...form.fields, ...typed }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(this.cookie ? { cookie: this.cookie } : {}) },
    });
    const set = String(r.headers['set-cookie'] ?? '').split(';')[0];
    if (set) this.cookie = set;
    return {
      status: r.status,
      text: r.text,
      title: /<h1>([^<]*)<\/h1>/.exec(r.text)?.[1],
      code: /<code id="code">([A-Z_]+)<\/code>/.exec(r.text)?.[1],
      error: /<p class="err">([^<]*)<\/p>/.exec(r.text)?.[1],
      form: formOf(r.text, form.action),
    };
  }
}

const prefix = clusterPrefix(t, TEST_REDIS_URL);
const masterKey = randomBytes(32);
const inbox = await sink(t);
const outside = await sink(t);
const one = await startNode(t, 'node1', prefix, masterKey, inbox, outside);
const two = await startNode(t, 'node2', prefix, masterKey, inbox, outside);

const run = randomBytes(4).toString('hex');
const SECRETS = {
  subject1: `Harbour plan ${run}`,
  body1: `Meet at the north gate at nine, code ${run}-one.`,
  subject2: `Second thoughts ${run}`,
  body2: `Bring the blue folder, code ${run}-two.`,
};
/** Every secure-message.html the outside world received, by the node that made it. */
const sealed: { via: string; form: Form }[] = [];

/** Sends a message from alice@alpha.test to bob@outside.test through a node's SMTP; returns the attachment's form from what the outside world received. */
async function send(t: Test, node: ClusterNode, subject: string, body: string): Promise<Form> {
  const id = `<${run}-${sealed.length}@client.alpha.test>`;
  const message = Buffer.from([`From: Alice <alice@alpha.test>`, `To: ${TO}`, `Subject: ${subject}`, `Message-ID: ${id}`, '', body, ''].join('\r\n'));
  const c = await SmtpClient.connect({ host: '127.0.0.1', port: node.smtpPort, helo: 'client.alpha.test', tls: 'none' });
  try {
    t.equal((await c.mail('alice@alpha.test')).code, 250, `MAIL on ${node.name}`);
    t.equal((await c.rcpt(TO)).code, 250, `RCPT on ${node.name}`);
    t.equal((await c.data(message)).code, 250, `DATA on ${node.name}`);
    await c.quit();
  } finally {
    c.close();
  }
  await outside.received(sealed.length + 1);
  const mail = outside.messages[sealed.length]!;
  t.same(mail.to, [TO], 'the WebMail mail went to the outside recipient');
  t.match((await readMessage(mail.data)).messageId, `@${node.name}.alpha.test>`, `${node.name} made it`);
  for (const secret of [subject, body]) t.notMatch(mail.data.toString('latin1'), secret, `"${secret}" is not readable in the mail`);
  const file = (await readMessage(mail.data)).attachments.find((a) => a.name === 'secure-message.html');
  t.ok(file, 'the mail carries secure-message.html');
  const form = formOf(file!.data.toString('utf8'), new URL('file:///secure-message.html'));
  t.equal(form?.action.href, `${PUBLIC}/webmail/open`, 'its form posts to the public WebMail URL');
  sealed.push({ via: node.name, form: form! });
  return form!;
}

t.test('a WebMail message sent through node 1 opens on node 2: registration there', async (t) => {
  const attachment = await send(t, one, SECRETS.subject1, SECRETS.body1);
  const b = new Browser();
  const opened = await b.submit(two, attachment);
  t.equal(opened.status, 200, 'node 2 opens the ciphertext node 1 sealed (one cluster WebMail key)');
  t.equal(opened.title, 'Choose your password', 'first contact: the registration page');
  t.ok(b.cookie?.startsWith('mailmesh_webmail='), 'a session cookie');
  const page = await b.submit(two, opened.form!, { password: PASSWORD, password2: PASSWORD });
  t.equal(page.status, 200, 'registered on node 2');
  t.equal(page.title, SECRETS.subject1, 'the message page');
  t.match(page.text, `<pre id="text">${SECRETS.body1}`, 'node 2 shows the message text');
});

t.test('a message sent through node 2 opens on node 1 with the same password', async (t) => {
  const attachment = await send(t, two, SECRETS.subject2, SECRETS.body2);
  const b = new Browser();
  const opened = await b.submit(one, attachment);
  t.equal(opened.status, 200, 'node 1 opens the ciphertext node 2 sealed');
  t.equal(opened.title, 'Enter your password', 'node 1 knows the registration made on node 2: the password page');
  const page = await b.submit(one, opened.form!, { password: PASSWORD });
  t.equal(page.status, 200, 'signed in on node 1');
  t.match(page.text, `<pre id="text">${SECRETS.body2}`, 'node 1 shows the message text');
  // And the first message, on node 1 too.
  const first = new Browser();
  const again = await first.submit(one, sealed[0]!.form);
  t.equal(again.title, 'Enter your password', 'the first message on node 1: the password page');
  t.match((await first.submit(one, again.form!, { password: PASSWORD })).text, SECRETS.body1, 'and its text');
});

t.test('wrong passwords on node 1 and node 2 count toward one lockout', async (t) => {
  const b = new Browser();
  const opened = await b.submit(one, sealed[1]!.form);
  t.equal(opened.title, 'Enter your password', 'node 1: the password page');
  const form = opened.form!;
  for (let i = 1; i < MAX_ATTEMPTS; i++) {
    const r = await b.submit(one, form, { password: `wrong password ${i}` });
    t.equal(r.status, 403, `node 1: wrong password ${i}`);
    t.equal(r.error, 'wrong password', 'the password page says so');
  }
  // The session opened on node 1 goes on on node 2 (sessions are in the store: no sticky load balancing needed).
  const last = await b.submit(two, form, { password: `wrong password ${MAX_ATTEMPTS}` });
  t.equal(last.status, 403, `node 2: wrong password ${MAX_ATTEMPTS}`);
  t.equal(last.error, 'wrong password', 'refused as wrong, not locked: node 2 saw fewer than the limit before it');
  for (const node of [one, two]) {
    const r = await b.submit(node, form, { password: PASSWORD });
    t.equal(r.status, 403, `${node.name}: the right password is refused`);
    t.equal(r.code, 'WEBMAIL_LOCKED', `${node.name}: the recipient is locked`);
  }
  const fresh = new Browser();
  const reopened = await fresh.submit(two, sealed[0]!.form);
  t.equal((await fresh.submit(two, reopened.form!, { password: PASSWORD })).code, 'WEBMAIL_LOCKED', 'a new session on node 2 for the other message too');
});

t.test('the Redis keys under the prefix hold no message content', async (t) => {
  const redis = new Redis(TEST_REDIS_URL);
  t.teardown(() => redis.quit());
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const chunks: Buffer[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === 'string') chunks.push((await redis.getBuffer(key))!);
    else if (type === 'hash') chunks.push(...Object.values(await redis.hgetallBuffer(key)));
    else if (type === 'zset') chunks.push(...(await redis.zrangeBuffer(key, 0, -1)));
    else if (type === 'set') chunks.push(...(await redis.smembersBuffer(key)));
    else if (type === 'list') chunks.push(...(await redis.lrangeBuffer(key, 0, -1)));
    else if (type !== 'none') t.fail(`${key}: a ${type} this test cannot read`);
  }
  const all = Buffer.concat([Buffer.from(keys.join('\n')), ...chunks]);
  const short = (k: string) => k.slice(prefix.length);
  t.ok(keys.map(short).includes(`kv:webmail:reg:${TO}`), 'the registration is there (the right keys were searched)');
  t.match(all.toString('latin1'), /"hash":"scrypt\$/, 'and its value was read');
  t.same(keys.map(short).filter((k) => k.startsWith('meta:webmail-key-')), ['meta:webmail-key-1'], 'both nodes use one WebMail key');
  for (const [what, secret] of [...Object.entries(SECRETS), ['password', PASSWORD], ['ciphertext', sealed[0]!.form.fields.data!.slice(100, 164)]]) {
    t.equal(all.indexOf(secret!), -1, `the ${what} is not in Redis`);
  }
});
