import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import { Directory } from '../../../directory/directory.js';
import { createDnsServer } from '../../../directory/dns/dns.js';
import { createHttpServer } from '../../../directory/http/http.js';
import { SqliteStore } from '../../../directory/store/sqlite.js';
import { Discovery } from '../../../federation/discovery.js';
import { stubResolver } from '../../../federation/dns.js';
import { MemoryPinStore } from '../../../federation/pins.js';
import { MailPolicy } from '../../../gateway/gateway.js';
import { captureSink, DEFAULT_POLICY, type CaptureSink } from '../../../gateway/loopback.js';
import { createRouter } from '../../../gateway/smtp/route.js';
import { createGateway } from '../../../gateway/smtp/smtp.js';
import { WebmailKeys, type SealedMessage } from '../../../gateway/webmail/crypto.js';
import { domainKeyOf } from '../../../gateway/webmail/receipt.js';
import { Webmail, type WebmailSettings } from '../../../gateway/webmail/webmail.js';
import { get } from '../../directory/http/helpers.js';
import { tempDir } from '../../helpers.js';

export interface Harness {
  directory: Directory;
  dbFile: string;
  masterKey: Buffer;
  keys: WebmailKeys;
  webmail: Webmail;
  base: string;
  smtpPort: number;
  /** alpha.test's internal mail server: replies arrive here. */
  inbox: CaptureSink;
  /** The outside world (smarthost): WebMail messages for outside recipients arrive here. */
  outside: CaptureSink;
  now: { date: Date };
}

/**
 * alpha.test on loopback with `fallback: webmail`: a directory on SQLite, its DNS (which
 * knows no key of any outside domain), the HTTP face with the WebMail pages, the gateway.
 */
export async function webmailGateway(t: Test, over: Partial<WebmailSettings> = {}): Promise<Harness> {
  const dir = tempDir(t);
  const dbFile = join(dir, 'mailmesh.db');
  const store = new SqliteStore(dbFile);
  const masterKey = randomBytes(32);
  const directory = await Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 365 } });
  t.teardown(() => store.close());
  await directory.addDomain('alpha.test');
  // After the domain key exists: receipts are signed at this time, and a key cannot sign before its creation.
  const now = { date: new Date() };
  const clock = () => now.date;
  const dns = await createDnsServer({
    directory, zone: 'dir.alpha.test', ttl: 60, hostmaster: 'hostmaster@alpha.test', nameservers: ['ns1.dir.alpha.test'],
    nameserverAddresses: ['127.0.0.1'], authoritativeFor: ['alpha.test', 'test'] /* `test` too: NXDOMAIN for outside.test, as on the Internet */, directoryUrl: 'http://127.0.0.1:1',
  });
  t.teardown(() => dns.close());
  const { port: dnsPort } = await dns.listen('127.0.0.1', 0);
  const inbox = await captureSink();
  const outside = await captureSink();
  t.teardown(() => inbox.close());
  t.teardown(() => outside.close());

  const keys = await WebmailKeys.open(store, masterKey);
  const replyServer = { host: '127.0.0.1', port: 0 };
  const settings: WebmailSettings = {
    baseUrl: 'http://127.0.0.1:0', language: 'en', expiryDays: 30, sessionSec: 900, maxAttempts: 3, maxClientAttempts: 20,
    lockoutSec: 900, delayMs: 0, replyServer, ...over,
  };
  const webmail = new Webmail({ ...settings, store, keys, name: 'mx.alpha.test', clock, scrypt: { N: 1 << 14, r: 8, p: 1 }, receiptKey: domainKeyOf(directory) });
  const app = await createHttpServer({
    directory, logger: pino({ level: 'silent' }),
    webmail: { handlers: webmail.handlers(), register: (a) => webmail.register(a, 30 * 1024 * 1024) },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  settings.baseUrl = base;
  // The Webmail reads baseUrl at build time: make one with the real URL.
  const live = new Webmail({ ...settings, baseUrl: base, store, keys, name: 'mx.alpha.test', clock, scrypt: { N: 1 << 14, r: 8, p: 1 }, receiptKey: domainKeyOf(directory) });

  const discovery = new Discovery({
    sources: { resolver: stubResolver([`127.0.0.1:${dnsPort}`]), wellKnownBase: () => 'http://127.0.0.1:1', clock: () => new Date(), timeoutMs: 500 },
    directories: [],
    pins: new MemoryPinStore(),
  });
  const policy = { ...DEFAULT_POLICY, default: { ...DEFAULT_POLICY.default, fallback: 'webmail' as const } };
  const mail = await MailPolicy.create({ directory, discovery, policy, authservId: 'mx.alpha.test', webmail: live });
  t.teardown(() => mail.close());
  const gw = await createGateway({
    listen: { host: '127.0.0.1', port: 0 },
    name: 'mx.alpha.test',
    ...mail.gatewayHooks(),
    isInternal: ['127.0.0.0/8'],
    route: createRouter({ internal: { host: '127.0.0.1', port: inbox.port, tls: 'none' }, smarthost: { host: '127.0.0.1', port: outside.port, tls: 'may' } }),
  });
  t.teardown(() => gw.close());
  const smtpPort = (await gw.listen()).port;
  replyServer.port = smtpPort;
  return { directory, dbFile, masterKey, keys, webmail: live, base, smtpPort, inbox, outside, now };
}

/** A form post to a WebMail page: the refusal code, the CSRF token and the session cookie of the answer. */
export async function post(h: Harness, path: string, fields: Record<string, string>, cookie?: string) {
  const r = await get(`${h.base}/webmail/${path}`, {
    method: 'POST', body: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
  });
  const code = /<code id="code">([A-Z_]+)<\/code>/.exec(r.text)?.[1];
  const csrf = /name="csrf" value="([^"]+)"/.exec(r.text)?.[1];
  const setCookie = String(r.headers['set-cookie'] ?? '').split(';')[0];
  return { ...r, code, csrf, cookie: setCookie || cookie };
}

export const fields = (s: SealedMessage) => ({ recipient: s.recipient, messageId: s.messageId, expires: String(s.expires), data: s.data });
