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
import { MemoryPinStore, type PinStore } from '../../../federation/pins.js';
import { MailPolicy } from '../../../gateway/gateway.js';
import { captureSink, type CaptureSink } from '../../../cli/demo/loopback.js';
import { WebmailKeys, type SealedMessage } from '../../../gateway/webmail/crypto.js';
import { domainKeyOf } from '../../../gateway/webmail/receipt.js';
import { Webmail, type WebmailOptions, type WebmailSettings } from '../../../gateway/webmail/webmail.js';
import { get } from '../../directory/http/helpers.js';
import { DEFAULT_POLICY, tempDir } from '../../helpers.js';
import { startGateway } from '../smtp/helpers.js';

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

/** A node's Webmail options, but its reply server (its own SMTP listener); without baseUrl, its own HTTP server's. */
export type NodeWebmailOptions = Omit<WebmailOptions, 'baseUrl' | 'replyServer'> & { baseUrl?: WebmailOptions['baseUrl'] };

export interface WebmailNode {
  webmail: Webmail;
  /** Its HTTP server. */
  base: string;
  smtpPort: number;
}

const WEBMAIL_POLICY = { ...DEFAULT_POLICY, default: { ...DEFAULT_POLICY.default, fallback: 'webmail' as const } };

/**
 * A gateway node of alpha.test with `fallback: webmail` on a directory that has alpha.test: its DNS
 * face (its discovery's resolver: it knows no key of an outside domain), the HTTP face with the
 * WebMail pages, the gateway (named `webmail.name`). Internal mail goes to `inbox`, mail for
 * outside domains to `outside`. Closed when the test ends.
 */
export async function webmailNode(
  t: Test,
  n: { directory: Directory; webmail: NodeWebmailOptions; pins: PinStore; inbox: CaptureSink; outside: CaptureSink },
): Promise<WebmailNode> {
  const { directory } = n;
  const dns = await createDnsServer({
    directory, zone: 'dir.alpha.test', ttl: 60, hostmaster: 'hostmaster@alpha.test', nameservers: ['ns1.dir.alpha.test'],
    nameserverAddresses: ['127.0.0.1'], authoritativeFor: ['alpha.test', 'test'] /* `test` too: NXDOMAIN for outside.test, as on the Internet */, directoryUrl: 'http://127.0.0.1:1',
  });
  t.teardown(() => dns.close());
  const { port: dnsPort } = await dns.listen('127.0.0.1', 0);

  // The Webmail keeps this object and reads baseUrl and replyServer when it uses them: both are set once the servers listen.
  const options: WebmailOptions = { baseUrl: 'http://127.0.0.1:0', ...n.webmail, replyServer: { host: '127.0.0.1', port: 0 } };
  const webmail = new Webmail(options);
  const app = await createHttpServer({
    directory, logger: pino({ level: 'silent' }),
    webmail: { handlers: webmail.handlers(), register: (a) => webmail.register(a, 20 * 1024 * 1024) },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  options.baseUrl = n.webmail.baseUrl ?? base;

  const discovery = new Discovery({
    sources: { resolver: stubResolver([`127.0.0.1:${dnsPort}`]), wellKnownBase: () => 'http://127.0.0.1:1', clock: () => new Date(), timeoutMs: 500 },
    directories: [],
    pins: n.pins,
  });
  const mail = await MailPolicy.create({ directory, discovery, policy: WEBMAIL_POLICY, authservId: options.name, webmail });
  t.teardown(() => mail.close());
  // Inbound to `inbox`, outbound to `outside`, without STARTTLS (the capture sinks offer none).
  options.replyServer.port = (await startGateway(t, { inbound: n.inbox, outbound: n.outside }, { name: options.name, ...mail.gatewayHooks() })).port;
  return { webmail, base, smtpPort: options.replyServer.port };
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
  const inbox = await captureSink();
  const outside = await captureSink();
  t.teardown(() => inbox.close());
  t.teardown(() => outside.close());

  const keys = await WebmailKeys.open(store, masterKey);
  const { webmail, base, smtpPort } = await webmailNode(t, {
    directory,
    webmail: {
      language: 'en', expiryDays: 30, sessionSec: 900, maxAttempts: 3, maxClientAttempts: 20, lockoutSec: 900, delayMs: 0, ...over,
      store, keys, name: 'mx.alpha.test', clock: () => now.date, scrypt: { N: 1 << 14, r: 8, p: 1 }, receiptKey: domainKeyOf(directory),
    },
    pins: new MemoryPinStore(),
    inbox,
    outside,
  });
  return { directory, dbFile, masterKey, keys, webmail, base, smtpPort, inbox, outside, now };
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
