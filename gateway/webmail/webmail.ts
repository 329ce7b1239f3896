import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import { requireBearer } from '../../directory/bearer.js';
import { parseAddress } from '../../directory/domain.js';
import { asMailmeshError, MailmeshError } from '../errors.js';
import { httpStatus, logRefusal } from '../../directory/http/http.js';
import type { KvStore } from '../../directory/store/store.js';
import { SmtpClient } from '../smtp/client.js';
import { MessageRefused } from '../smtp/smtp.js';
import { rfc5322Date } from '../header.js';
import { openMessage, sealMessage, type SealedMessage, type WebmailKeys } from './crypto.js';
import { esc, texts, type Language, type Texts } from './i18n.js';
import { attachmentDisposition, encodeWord, firstAddress, readMessage, writeMessage, type Readable } from './message.js';
import { attachmentFile, loginPage, messagePage, notePage, page, registerPage } from './pages.js';
import { checkPassword, hashPassword, needsRehash, SCRYPT, verifyPassword, type ScryptParams } from './password.js';
import { signReceipt } from './receipt.js';
import { formLimit, normalAddress, registerFormParser, REPLY_MAX, sealedFrom } from './form.js';
import { clearFailures, failureKey, regKey, resetRegistration } from './registrations.js';

export { normalAddress, sealedFrom } from './form.js';
export { resetRegistration } from './registrations.js';

export interface WebmailSettings {
  /** Public base URL of the HTTP server (the pages are under <baseUrl>/webmail/); a function is asked each time (the face's port is known once it listens). */
  baseUrl: string | (() => string);
  language: Language;
  expiryDays: number;
  sessionSec: number;
  /** Wrong passwords per recipient before the lockout. */
  maxAttempts: number;
  /** Wrong passwords per client address before the lockout. */
  maxClientAttempts: number;
  lockoutSec: number;
  /** The wait after the n-th wrong password is delayMs · 2^(n-1). */
  delayMs: number;
  /** Where secure replies are sent (SMTP): the gateway's own listener. */
  replyServer: { host: string; port: number };
  /** Keep the real Subject in the notification mail. */
  keepSubject?: boolean;
  /** Bearer token of DELETE /v1/webmail/registrations/{address}; unset: that operation is disabled. */
  adminToken?: string;
  /** Registered mail for every WebMail message (else only for those with `X-Mailmesh-Registered: yes`). */
  registered?: boolean;
}

export interface WebmailOptions extends WebmailSettings {
  store: KvStore;
  keys: WebmailKeys;
  /** Our host name (EHLO, Message-IDs). */
  name: string;
  clock?: () => Date;
  /** scrypt parameters of new hashes (default SCRYPT, password.ts); tests use cheaper ones. */
  scrypt?: ScryptParams;
  /** The armored private key of a sender domain, for registered-mail receipts (receipt.ts `domainKeyOf`). */
  receiptKey?: (domain: string) => Promise<string | undefined>;
}

interface Session {
  recipient: string;
  messageId: string;
  csrf: string;
  auth: boolean;
}

const COOKIE = 'mailmesh_webmail';

/**
 * Enhanced WebMail (docs/architecture.md): the notification mail with the sealed message, and the pages
 * that open it. The server keeps only registrations (address → scrypt hash), failure counters
 * and short sessions (address, message id, CSRF token) in the store's key-value space.
 */
export class Webmail {
  readonly #o: WebmailOptions;
  readonly #t: Texts;
  readonly #clock: () => Date;

  /** The pages' base URL, without a trailing slash. */
  #baseUrl(): string {
    const b = this.#o.baseUrl;
    return (typeof b === 'function' ? b() : b).replace(/\/+$/, '');
  }

  constructor(o: WebmailOptions) {
    this.#o = o;
    this.#t = texts(o.language);
    this.#clock = o.clock ?? (() => new Date());
  }

  /** The WebMail message for one recipient: text and HTML notice plus `secure-message.html`. */
  async buildMail(original: Buffer, from: string, recipient: string): Promise<Buffer> {
    const t = this.#t;
    const now = this.#clock();
    // A message WebMail could never show is refused now (RFC 3463 §3.7: 5.6.0), not retried for days.
    const read = await readMessage(original).catch((e: unknown) => {
      throw new MessageRefused({ code: 554, lines: [`5.6.0 The message cannot be read for WebMail: ${asMailmeshError(e).detail ?? 'unreadable'}`] });
    });
    const messageId = read.messageId || `<${randomBytes(12).toString('hex')}@${this.#o.name}>`;
    const expires = Math.floor(now.getTime() / 1000) + this.#o.expiryDays * 86400;
    const sealed = await sealMessage(this.#o.keys, original, { recipient: normalAddress(recipient), messageId, expires });
    const sender = firstAddress(read.from) ?? from;
    const vars = { from: sender, to: recipient, expires: new Date(expires * 1000).toISOString().slice(0, 10) };
    const lines = [t('mailIntro', vars), t('mailHow', vars), t('mailWarn', vars)];
    const subject = this.#o.keepSubject && read.subject ? `${t('mailSubject', vars)}: ${read.subject}` : t('mailSubject', vars);
    const html = page(this.#o.language, subject, lines.map((l) => `<p>${esc(l)}</p>`).join(''), 'none');
    // RFC 5322 §3.6: From stays the original sender's; the message id is new, the original one is sealed inside.
    const header = [
      `From: ${encodeWord(read.from || sender)}`,
      `To: ${recipient}`,
      `Subject: ${encodeWord(subject)}`,
      `Date: ${rfc5322Date(now.getTime())}`,
      `Message-ID: <${randomBytes(12).toString('hex')}@${this.#o.name}>`,
      'X-Mailmesh-Webmail: 1',
    ];
    const file = attachmentFile(t, this.#o.language, `${this.#baseUrl()}/webmail/open`, sealed);
    return writeMessage(header, [
      [
        { type: 'text/plain; charset=utf-8', body: lines.join('\r\n\r\n') + '\r\n' },
        { type: 'text/html; charset=utf-8', body: html },
      ],
      { type: 'text/html; charset=utf-8; name="secure-message.html"', headers: ['Content-Disposition: attachment; filename="secure-message.html"'], body: file },
    ]);
  }

  /** The form body parser, in the WebMail routes' own context (http.ts), sized for mail up to `maxMessageBytes`. */
  register(scope: FastifyInstance, maxMessageBytes: number): void {
    registerFormParser(scope, formLimit(maxMessageBytes));
  }

  /** The handlers of the webmail operations in openapi.yaml. */
  handlers(): Record<string, RouteHandlerMethod> {
    return {
      webmailOpen: this.#page(async (_req, reply, _form, sealed) => {
        await this.#open(sealed);
        const s: Session = { recipient: sealed.recipient, messageId: sealed.messageId, csrf: randomBytes(24).toString('base64url'), auth: false };
        await this.#newSession(reply, s);
        const registered = (await this.#o.store.kvGet(this.#regKey(sealed.recipient))) !== undefined;
        return registered ? this.#send(reply, 200, loginPage(this.#t, sealed, s.csrf)) : this.#send(reply, 200, registerPage(this.#t, sealed, s.csrf));
      }),

      webmailRegister: this.#page(async (req, reply, form, sealed) => {
        const s = await this.#session(req, form, sealed, false);
        const plain = await this.#open(sealed);
        const pw = form.password ?? '';
        if (pw !== (form.password2 ?? '')) return this.#send(reply, 400, registerPage(this.#t, sealed, s.csrf, this.#t('mismatch')));
        try {
          checkPassword(pw, sealed.recipient);
        } catch (e) {
          return this.#send(reply, 400, registerPage(this.#t, sealed, s.csrf, asMailmeshError(e).publicMessage));
        }
        const set = await this.#o.store.kvPut(this.#regKey(sealed.recipient), JSON.stringify({ hash: await hashPassword(pw, this.#o.scrypt), at: this.#clock().toISOString() }), { ifAbsent: true });
        if (!set) throw new MailmeshError('WEBMAIL_REGISTERED', sealed.recipient);
        return this.#showMessage(req, reply, s, sealed, plain);
      }),

      webmailLogin: this.#page(async (req, reply, form, sealed) => {
        const s = await this.#session(req, form, sealed, false);
        const rcpt = failureKey('rcpt', sealed.recipient);
        const client = failureKey('client', req.ip);
        await this.#checkFailures([rcpt, client], [this.#o.maxAttempts, this.#o.maxClientAttempts]);
        const plain = await this.#open(sealed);
        // The attempt counts before the password is tried: of guesses sent at once, to any
        // nodes, at most maxAttempts are tried (the counter is atomic across the cluster).
        if ((await this.#count(rcpt)) > this.#o.maxAttempts) throw new MailmeshError('WEBMAIL_LOCKED', rcpt);
        const reg = await this.#o.store.kvGet(this.#regKey(sealed.recipient));
        const hash = reg === undefined ? undefined : (JSON.parse(reg) as { hash: string }).hash;
        if (hash === undefined || !(await verifyPassword(form.password ?? '', hash))) {
          await this.#count(client);
          return this.#send(reply, 403, loginPage(this.#t, sealed, s.csrf, new MailmeshError('WEBMAIL_PASSWORD').publicMessage));
        }
        await clearFailures(this.#o.store, rcpt);
        await this.#rehash(sealed.recipient, reg!, hash, form.password ?? '').catch((err: unknown) => req.log.warn({ err }, 'password not rehashed'));
        return this.#showMessage(req, reply, s, sealed, plain);
      }),

      webmailAttachment: this.#page(async (req, reply, form, sealed) => {
        await this.#session(req, form, sealed, true);
        const m = await readMessage(await this.#open(sealed));
        const a = m.attachments[Number(form.index)];
        if (!/^\d{1,4}$/.test(form.index ?? '') || !a) throw new MailmeshError('BAD_REQUEST', 'no such attachment');
        return reply
          .code(200)
          .header('content-disposition', attachmentDisposition(a.name))
          .header('cache-control', 'no-store')
          .header('x-content-type-options', 'nosniff')
          .type('application/octet-stream')
          .send(a.data);
      }),

      webmailReply: this.#page(async (req, reply, form, sealed) => {
        await this.#session(req, form, sealed, true);
        const m = await readMessage(await this.#open(sealed));
        const to = firstAddress(m.from);
        if (!to) throw new MailmeshError('WEBMAIL_INVALID', 'the message has no sender address');
        const text = form.text ?? '';
        if (text.length > REPLY_MAX) throw new MailmeshError('BAD_REQUEST', `the reply is longer than ${REPLY_MAX} characters`);
        await this.#sendReply(sealed.recipient, to, m.subject, sealed.messageId, text);
        return this.#send(reply, 200, notePage(this.#t('reply'), this.#t('replySent', { to }), true));
      }),

      // An operator API (JSON errors, not pages): RFC 6750 §2.1 bearer token, RFC 9110 §9.3.5 DELETE.
      webmailResetRegistration: async (req, reply) => {
        requireBearer(req.headers.authorization, this.#o.adminToken, 'set federation.importToken to allow WebMail resets over HTTP');
        const address = normalAddress((req.params as { address: string }).address);
        if (!(await this.resetRegistration(address))) throw new MailmeshError('NOT_FOUND', `${address} is not registered`);
        return reply.code(204).send();
      },
    };
  }

  /** Forgets a recipient's password and failure counter (for `mailmesh webmail reset`). */
  async resetRegistration(address: string): Promise<boolean> {
    return resetRegistration(this.#o.store, address);
  }

  /**
   * A hash made with older scrypt parameters is replaced by one with the current ones after a
   * right password, unless the registration changed meanwhile (a reset or another rehash).
   */
  async #rehash(address: string, reg: string, hash: string, password: string): Promise<void> {
    const params = this.#o.scrypt ?? SCRYPT;
    if (!needsRehash(hash, params)) return;
    const fresh = JSON.stringify({ hash: await hashPassword(password, params), at: this.#clock().toISOString() });
    if ((await this.#o.store.kvGet(this.#regKey(address))) === reg) await this.#o.store.kvPut(this.#regKey(address), fresh);
  }

  #regKey(address: string): string {
    return regKey(address);
  }

  /** Wraps a page handler: parses the form, renders every refusal as a page with its code and request ID. */
  #page(f: (req: FastifyRequest, reply: FastifyReply, form: Record<string, string>, sealed: SealedMessage) => Promise<FastifyReply>): RouteHandlerMethod {
    return async (req, reply) => {
      try {
        const form = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, string>;
        return await f(req, reply, form, sealedFrom(form));
      } catch (e) {
        // The page names the code and the request ID; the detail is in the log under that ID.
        const err = asMailmeshError(e);
        logRefusal(req.log, err, e);
        reply.header('x-request-id', req.id);
        return this.#send(reply, httpStatus(err), notePage(this.#t('errorTitle'), err.publicMessage, false, err.code, req.id));
      }
    };
  }

  #send(reply: FastifyReply, code: number, body: string): FastifyReply {
    const nonce = randomBytes(16).toString('base64');
    return reply
      .code(code)
      .header('content-security-policy', `default-src 'none'; style-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(page(this.#o.language, 'mailmesh', body, nonce));
  }

  async #open(sealed: SealedMessage): Promise<Buffer> {
    return openMessage(this.#o.keys, sealed, this.#clock());
  }

  /** RFC 6265 §4.1: a host-only, HttpOnly, SameSite=Strict cookie for the /webmail/ path. */
  async #newSession(reply: FastifyReply, s: Session): Promise<void> {
    const id = randomBytes(24).toString('base64url');
    await this.#o.store.kvPut(`webmail:session:${id}`, JSON.stringify(s), { ttlSec: this.#o.sessionSec });
    const secure = this.#baseUrl().startsWith('https:') ? '; Secure' : '';
    reply.header('set-cookie', `${COOKIE}=${id}; Path=/webmail/; HttpOnly; SameSite=Strict; Max-Age=${this.#o.sessionSec}${secure}`);
    reply.header('x-webmail-session', 'new');
  }

  /** The session of the cookie, bound to this message, with the form's CSRF token. */
  async #session(req: FastifyRequest, form: Record<string, string>, sealed: SealedMessage, auth: boolean): Promise<Session> {
    const id = new RegExp(`(?:^|;\\s*)${COOKIE}=([A-Za-z0-9_-]{1,64})`).exec(req.headers.cookie ?? '')?.[1];
    const raw = id ? await this.#o.store.kvGet(`webmail:session:${id}`) : undefined;
    if (!raw) throw new MailmeshError('WEBMAIL_SESSION', 'no session');
    const s = JSON.parse(raw) as Session;
    if (!safeEqual(form.csrf ?? '', s.csrf)) throw new MailmeshError('WEBMAIL_CSRF', 'csrf token');
    if (s.recipient !== sealed.recipient || s.messageId !== sealed.messageId) throw new MailmeshError('WEBMAIL_SESSION', 'another message');
    if (auth && !s.auth) throw new MailmeshError('WEBMAIL_SESSION', 'not signed in');
    return s;
  }

  /** After the password: a new session id (no fixation), then the message (`plain`: the opened `sealed`). */
  async #showMessage(req: FastifyRequest, reply: FastifyReply, s: Session, sealed: SealedMessage, plain: Buffer): Promise<FastifyReply> {
    const m = await readMessage(plain);
    const next: Session = { ...s, auth: true, csrf: randomBytes(24).toString('base64url') };
    await this.#newSession(reply, next);
    if (m.registered || this.#o.registered) await this.#receipt(sealed, m).catch((err: unknown) => req.log.warn({ err }, 'registered-mail receipt not sent'));
    return this.#send(reply, 200, messagePage(this.#t, sealed, next.csrf, m));
  }

  /**
   * Registered mail: the first opening (marked set-if-absent in the store, by a hash of recipient
   * and message id, until the message expires) sends the sender a receipt signed with its domain
   * key. Senders outside this directory's domains get none (there is no key to sign with).
   */
  async #receipt(sealed: SealedMessage, m: Readable): Promise<void> {
    const to = firstAddress(m.from);
    if (!to || !this.#o.receiptKey) return;
    const mark = `webmail:receipt:${createHash('sha256').update(`${sealed.recipient}\n${sealed.messageId}`).digest('hex')}`;
    const opened = this.#clock();
    const ttlSec = Math.max(1, sealed.expires - Math.floor(opened.getTime() / 1000));
    // Marked first: a later opening costs one store write, not a look-up of the signing key.
    if (!(await this.#o.store.kvPut(mark, opened.toISOString(), { ifAbsent: true, ttlSec }))) return;
    try {
      const key = await this.#o.receiptKey(parseAddress(to).domain);
      if (!key) return; // a sender outside our domains: no key to sign with, and none will come
      const text = await signReceipt({ messageId: sealed.messageId, recipient: sealed.recipient, opened }, key);
      const header = [
        `From: mailmesh <postmaster@${parseAddress(to).domain}>`,
        `To: ${to}`,
        `Subject: ${encodeWord(`Registered mail: opened by ${sealed.recipient}`)}`,
        `Date: ${rfc5322Date(opened.getTime())}`,
        `Message-ID: <${randomBytes(12).toString('hex')}@${this.#o.name}>`,
        `References: ${sealed.messageId}`,
        'X-Mailmesh-Webmail-Receipt: 1',
      ];
      // RFC 5321 §4.5.5: a notification goes with the null reverse-path (no bounce loops).
      await this.#submit('', to, writeMessage(header, [{ type: 'text/plain; charset=utf-8', body: text.replace(/\r?\n/g, '\r\n') }]));
    } catch (e) {
      await this.#o.store.kvDelete(mark); // not sent: the next opening tries again
      throw e;
    }
  }

  /**
   * Lockout after the limit; before it, a wait that doubles with every failure. Failures are
   * counted by `#count`; a lockout that is over (on the WebMail clock) clears its counter.
   */
  async #checkFailures(keys: string[], limits: number[]): Promise<void> {
    const now = this.#clock().getTime();
    const read = await Promise.all(keys.flatMap((key) => [this.#o.store.kvGet(key), this.#o.store.kvGet(`${key}:last`)]));
    for (const [i, key] of keys.entries()) {
      const raw = read[2 * i];
      if (raw === undefined) continue;
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) throw new MailmeshError('WEBMAIL_LOCKED', `${key}: unreadable counter`);
      const last = Number(read[2 * i + 1] ?? 0);
      if (n >= limits[i]!) {
        if (now < last + this.#o.lockoutSec * 1000) throw new MailmeshError('WEBMAIL_LOCKED', key);
        await clearFailures(this.#o.store, key);
      } else if (now < last + this.#o.delayMs * 2 ** (n - 1)) {
        throw new MailmeshError('RATE_LIMITED', `${key}: wait`);
      }
    }
  }

  /**
   * One more failure (or attempt) on a counter: `kvIncr`, atomic across the cluster's nodes,
   * living `lockoutSec` after the last one; `<key>:last` holds its time (written first, so a
   * check never sees the new count with the old time).
   */
  async #count(key: string): Promise<number> {
    await this.#o.store.kvPut(`${key}:last`, String(this.#clock().getTime()), { ttlSec: this.#o.lockoutSec });
    return (await this.#o.store.kvIncr(key, this.#o.lockoutSec * 1000, { slide: true })).count;
  }

  /** The secure reply: a plain RFC 5322 message from the recipient to the sender, through the gateway. */
  async #sendReply(from: string, to: string, subject: string, inReplyTo: string, text: string): Promise<void> {
    const header = [
      `From: ${from}`,
      `To: ${to}`,
      `Subject: ${encodeWord(/^re:/i.test(subject) ? subject : `Re: ${subject}`)}`,
      `Date: ${rfc5322Date(this.#clock().getTime())}`,
      `Message-ID: <${randomBytes(12).toString('hex')}@${this.#o.name}>`,
      // RFC 5322 §3.6.4: the reply names the message it answers.
      `In-Reply-To: ${inReplyTo}`,
      `References: ${inReplyTo}`,
      'X-Mailmesh-Webmail-Reply: 1',
    ];
    await this.#submit(from, to, writeMessage(header, [{ type: 'text/plain; charset=utf-8', body: text.replace(/\r?\n/g, '\r\n') }]));
  }

  /** One message by SMTP to the reply server (the gateway routes it). */
  async #submit(from: string, to: string, message: Buffer): Promise<void> {
    const c = await SmtpClient.connect({ ...this.#o.replyServer, helo: this.#o.name, tls: 'may' });
    try {
      for (const step of [() => c.mail(from), () => c.rcpt(to), () => c.data(message)]) {
        const r = await step();
        if (r.code >= 400) throw new MailmeshError('NEXT_HOP_REFUSED', r.lines.join(' '));
      }
      await c.quit();
    } finally {
      c.close();
    }
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
