import net from 'node:net';
import tls from 'node:tls';
import { MailmeshError } from '../errors.js';

/**
 * A small SMTP client for the next hop (docs/smtp.md "Next hop"). It does one thing the
 * gateway needs and nodemailer's SMTPConnection does not: every command is its own call
 * that resolves with the server's reply, so RCPT replies can be relayed one by one while
 * the upstream transaction is still open. Commands are sent one at a time (no pipelining).
 *
 * A reply of any code resolves; only transport failures reject, with a MailmeshError:
 * NEXT_HOP_UNAVAILABLE (cannot connect, connection lost), NEXT_HOP_TIMEOUT, NEXT_HOP_PROTOCOL
 * (a reply that is not SMTP), NEXT_HOP_TLS (STARTTLS missing or failed), NEXT_HOP_REFUSED
 * (greeting or EHLO/HELO refused). After a rejection the client is closed.
 */

export interface Reply {
  code: number;
  /** The text of each line, after "250-" / "250 ". */
  lines: string[];
}

/** One line for logs and for passing a reply on: the lines joined by a space. */
export function replyText(r: Reply): string {
  return r.lines.join(' ').trim();
}

// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; we tolerate longer ones up to this.
const MAX_REPLY_LINE = 4096;
// A multi-line reply (RFC 5321 §4.2.1) longer than this is not a server talking to us.
const MAX_REPLY_LINES = 256;

/**
 * Splits the server's byte stream into replies. RFC 5321 §4.2: each line is
 * `<3 digits><SP or "-"><text>CRLF`; "-" continues the reply, SP ends it, and every
 * line of one reply carries the same code. A bare LF ends a line too (lenient); anything
 * else throws NEXT_HOP_PROTOCOL.
 */
export class ReplyParser {
  private partial = '';
  private lines: string[] = [];
  private code = 0;

  push(chunk: Buffer | string): Reply[] {
    const out: Reply[] = [];
    this.partial += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      const reply = this.line(line);
      if (reply) out.push(reply);
    }
    if (this.partial.length > MAX_REPLY_LINE) throw protocol(`reply line longer than ${MAX_REPLY_LINE} octets`);
    return out;
  }

  private line(line: string): Reply | undefined {
    if (line.length > MAX_REPLY_LINE) throw protocol(`reply line longer than ${MAX_REPLY_LINE} octets`);
    const m = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s.exec(line);
    if (!m) throw protocol(`not an SMTP reply line: ${JSON.stringify(line.slice(0, 80))}`);
    const code = Number(m[1]);
    if (this.lines.length > 0 && code !== this.code) throw protocol(`reply code changed within a reply (${this.code} → ${code})`);
    this.code = code;
    this.lines.push(m[3] ?? '');
    if (this.lines.length > MAX_REPLY_LINES) throw protocol(`more than ${MAX_REPLY_LINES} reply lines`);
    if (m[2] === '-') return undefined;
    const reply = { code, lines: this.lines };
    this.lines = [];
    return reply;
  }
}

function protocol(detail: string): MailmeshError {
  return new MailmeshError('NEXT_HOP_PROTOCOL', detail);
}

/**
 * The message as DATA content (RFC 5321 §4.5.2 and §2.3.8): every line ends in CRLF (bare
 * LF and bare CR become CRLF), a line that begins with "." gets one more ".", and the
 * content ends with CRLF "." CRLF.
 */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  let lineStart = true;
  const DOT = Buffer.from('.');
  const CRLF = Buffer.from('\r\n');
  for (let i = 0; i < message.length; i++) {
    const b = message[i]!;
    if (lineStart && b === 0x2e) {
      parts.push(message.subarray(start, i), DOT);
      start = i;
    }
    lineStart = false;
    if (b === 0x0d || b === 0x0a) {
      parts.push(message.subarray(start, i), CRLF);
      if (b === 0x0d && message[i + 1] === 0x0a) i++;
      start = i + 1;
      lineStart = true;
    }
  }
  parts.push(message.subarray(start));
  if (!lineStart) parts.push(CRLF);
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

/** How the next hop's STARTTLS is used, in Postfix's words (smtp_tls_security_level). */
export type TlsPolicy = 'none' | 'may' | 'encrypt' | 'verify';

export interface ClientOptions {
  host: string;
  port: number;
  /** Our name in EHLO. */
  helo: string;
  /**
   * none: never STARTTLS. may (default): STARTTLS when offered, certificate not checked
   * (RFC 7435 opportunistic security). encrypt: STARTTLS required, certificate not checked.
   * verify: STARTTLS required and the certificate must verify for `servername` (default host)
   * against `ca` (default: Node's CA store).
   */
  tls?: TlsPolicy;
  ca?: string | Buffer | (string | Buffer)[];
  servername?: string;
  timeouts?: Partial<ClientTimeouts>;
}

export interface ClientTimeouts {
  /** TCP connect, greeting, EHLO and STARTTLS together. */
  connect: number;
  /** Any one command's reply (MAIL, RCPT, RSET, DATA's 354, QUIT). */
  command: number;
  /** The reply to the end of the message (RFC 5321 §4.5.3.2.6 allows the server 10 minutes; we wait less). */
  dataEnd: number;
}

export const DEFAULT_CLIENT_TIMEOUTS: ClientTimeouts = { connect: 30_000, command: 60_000, dataEnd: 120_000 };

interface Waiter {
  resolve(r: Reply): void;
  reject(e: MailmeshError): void;
}

export class SmtpClient {
  /** EHLO keywords (upper case) → their parameters (RFC 5321 §4.1.1.1). */
  capabilities = new Map<string, string>();
  greeting: Reply = { code: 0, lines: [] };
  private socket: net.Socket | tls.TLSSocket;
  private parser = new ReplyParser();
  private waiter: Waiter | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private failure: MailmeshError | undefined;
  private readonly timeouts: ClientTimeouts;

  private constructor(
    socket: net.Socket,
    readonly options: ClientOptions,
  ) {
    this.socket = socket;
    this.timeouts = { ...DEFAULT_CLIENT_TIMEOUTS, ...options.timeouts };
  }

  /** Connects, reads the greeting, says EHLO (HELO if refused) and does STARTTLS per policy. */
  static async connect(options: ClientOptions): Promise<SmtpClient> {
    const socket = net.connect({ host: options.host, port: options.port, noDelay: true });
    const client = new SmtpClient(socket, options);
    client.attach(socket);
    const deadline = setTimeout(() => client.fail(new MailmeshError('NEXT_HOP_TIMEOUT', `connecting to ${client.peer}`)), client.timeouts.connect);
    try {
      await client.handshake();
      return client;
    } catch (e) {
      client.close();
      throw e;
    } finally {
      clearTimeout(deadline);
    }
  }

  get peer(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  /** True once STARTTLS succeeded. */
  get secure(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  /** False once the connection failed or was closed; a closed client is not reused. */
  get usable(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  has(keyword: string): boolean {
    return this.capabilities.has(keyword.toUpperCase());
  }

  private async handshake(): Promise<void> {
    this.greeting = await this.expect();
    // RFC 5321 §4.3.1: 220 greets; 554 refuses the session.
    if (this.greeting.code !== 220) throw refused('greeting', this.greeting);
    await this.ehlo();
    const policy = this.options.tls ?? 'may';
    if (policy === 'none') return;
    if (!this.has('STARTTLS')) {
      if (policy === 'may') return;
      throw new MailmeshError('NEXT_HOP_TLS', `${this.peer} does not offer STARTTLS`);
    }
    // RFC 3207 §4: STARTTLS, 220, the TLS handshake, then EHLO again (§4.2: forget what was learnt).
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new MailmeshError('NEXT_HOP_TLS', `${this.peer} refused STARTTLS: ${r.code} ${replyText(r)}`);
    await this.startTls(policy === 'verify');
    await this.ehlo();
  }

  private async ehlo(): Promise<void> {
    let r = await this.command(`EHLO ${this.options.helo}`);
    this.capabilities.clear();
    if (r.code === 250) {
      // RFC 5321 §4.1.1.1: the first line is the greeting, the others "keyword [params]".
      for (const line of r.lines.slice(1)) {
        const [kw, ...params] = line.trim().split(/\s+/);
        if (kw) this.capabilities.set(kw.toUpperCase(), params.join(' '));
      }
      return;
    }
    // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
    if (r.code >= 500 && r.code < 510) r = await this.command(`HELO ${this.options.helo}`);
    if (r.code !== 250) throw refused('EHLO', r);
  }

  private startTls(verify: boolean): Promise<void> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    // The raw socket keeps an 'error' listener: an error with none would end the process.
    raw.on('error', (e: Error) => this.fail(new MailmeshError('NEXT_HOP_TLS', `${this.peer}: ${e.message}`, { cause: e })));
    return new Promise((resolve, reject) => {
      const secure = tls.connect({
        socket: raw,
        servername: net.isIP(this.options.servername ?? this.options.host) ? undefined : (this.options.servername ?? this.options.host),
        rejectUnauthorized: verify,
        ca: this.options.ca,
        minVersion: 'TLSv1.2',
      });
      this.socket = secure;
      this.parser = new ReplyParser();
      const onError = (e: Error) => {
        this.fail(new MailmeshError('NEXT_HOP_TLS', `${this.peer}: ${e.message}`, { cause: e }));
        reject(this.failure);
      };
      const onClose = () => onError(new Error('connection closed during the TLS handshake'));
      // `on`, not `once`: a second 'error' during the handshake must find a listener too.
      secure.on('error', onError);
      secure.once('close', onClose);
      secure.once('secureConnect', () => {
        secure.off('error', onError);
        secure.off('close', onClose);
        this.attach(secure);
        resolve();
      });
    });
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: Error) => this.fail(new MailmeshError('NEXT_HOP_UNAVAILABLE', `${this.peer}: ${e.message}`, { cause: e })));
    socket.on('close', () => this.fail(new MailmeshError('NEXT_HOP_UNAVAILABLE', `${this.peer}: connection closed`)));
  }

  private onData(chunk: Buffer): void {
    let replies: Reply[];
    try {
      replies = this.parser.push(chunk);
    } catch (e) {
      this.fail(e as MailmeshError);
      return;
    }
    for (const r of replies) {
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(r);
      // RFC 5321 §3.8: 421 (as a reply or unsolicited) means the server is closing the session;
      // any other unsolicited reply means we no longer know where we are. Either way it is over.
      if (!w || r.code === 421) this.fail(new MailmeshError('NEXT_HOP_UNAVAILABLE', `${this.peer} said ${w ? '' : 'without being asked '}${r.code} ${replyText(r)}`));
    }
  }

  private fail(e: MailmeshError): void {
    if (!this.failure) this.failure = e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** The next reply, within `timeout` ms (no limit when 0: the caller has its own deadline). */
  private expect(timeout = 0): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Reply>((resolve, reject) => {
      const timer = timeout ? setTimeout(() => this.fail(new MailmeshError('NEXT_HOP_TIMEOUT', `${this.peer} did not answer within ${timeout} ms`)), timeout) : undefined;
      this.waiter = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  /** Sends one command line (or raw bytes) and waits for its reply; commands queue behind each other. */
  private exchange(data: string | Buffer, timeout: number): Promise<Reply> {
    const run = async () => {
      if (this.failure) throw this.failure;
      const reply = this.expect(timeout);
      this.socket.write(typeof data === 'string' ? `${data}\r\n` : data);
      return reply;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private command(line: string): Promise<Reply> {
    // RFC 5321 §4.1.1: no CR or LF inside a command line; the caller's values come from a parsed envelope.
    if (/[\r\n]/.test(line)) return Promise.reject(new MailmeshError('BAD_REQUEST', 'CR or LF in an SMTP command'));
    return this.exchange(line, this.timeouts.command);
  }

  /** RFC 5321 §4.1.1.2 MAIL FROM:<reverse-path> [params], e.g. SIZE=n (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531). */
  mail(from: string, params: string[] = []): Promise<Reply> {
    return this.command([`MAIL FROM:<${from}>`, ...params].join(' '));
  }

  /** RFC 5321 §4.1.1.3 RCPT TO:<forward-path> */
  rcpt(to: string): Promise<Reply> {
    return this.command(`RCPT TO:<${to}>`);
  }

  /** RFC 5321 §4.1.1.4: DATA, and after 354 the dot-stuffed message; resolves with the final reply (or the refusal of DATA). */
  async data(message: Buffer): Promise<Reply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    return this.exchange(dotStuff(message), this.timeouts.dataEnd);
  }

  /** RFC 5321 §4.1.1.5 */
  rset(): Promise<Reply> {
    return this.command('RSET');
  }

  /** RFC 5321 §4.1.1.10: QUIT, then the connection is closed whatever the answer. */
  async quit(): Promise<void> {
    if (!this.usable) return;
    await this.command('QUIT').catch(() => undefined);
    this.close();
  }

  close(): void {
    this.fail(new MailmeshError('NEXT_HOP_UNAVAILABLE', `${this.peer}: closed by us`));
  }
}

function refused(what: string, r: Reply): MailmeshError {
  return new MailmeshError('NEXT_HOP_REFUSED', `${what}: ${r.code} ${replyText(r)}`);
}
