import net, { type AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { Test } from 'tap';
import { ReplyParser, replyText, type Reply } from '../../../gateway/smtp/client.js';
import { createGateway, type Envelope, type Gateway, type GatewayOptions } from '../../../gateway/smtp/smtp.js';
import type { TlsKeyPair } from '../../../directory/tls.js';

/** What a sink does; every field is optional: by default it takes everything. */
export interface SinkBehaviour {
  /** A refusal for this recipient, or undefined to accept. */
  rcpt?(address: string): { code: number; message: string } | undefined;
  /** accept (default); a refusal; hang (never answer the final dot); drop (cut the connection mid-message). */
  data?: 'accept' | { code: number; message: string } | 'hang' | 'drop';
  /** Called with the message before the sink answers; the sink answers when it resolves. */
  beforeReply?(): Promise<void>;
  tls?: TlsKeyPair;
  /** Do not offer SMTPUTF8. */
  noUtf8?: boolean;
}

export interface SinkMessage {
  from: string;
  to: string[];
  data: Buffer;
  secure: boolean;
  session: string;
  smtpUtf8: boolean;
  bodyType: string;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Sessions opened / closed (QUIT or drop) so far. */
  connections: number;
  closed: Promise<void>[];
  /** Resolves when the sink has taken `n` messages. */
  received(n: number): Promise<void>;
}

/** A next-hop SMTP server (smtp-server) on port 0 that records what it gets. */
export async function startSink(t: Test, b: SinkBehaviour = {}): Promise<Sink> {
  const sockets = new Set<net.Socket>();
  const waiters: { n: number; resolve(): void }[] = [];
  const closers = new Map<string, () => void>();
  const sink: Sink = {
    port: 0,
    messages: [],
    connections: 0,
    closed: [],
    received: (n) => (sink.messages.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: b.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(b.tls ? { key: b.tls.key, cert: b.tls.cert } : { hideSTARTTLS: true }),
    size: 10 * 1024 * 1024,
    closeTimeout: 100,
    hideSMTPUTF8: b.noUtf8 === true,
    onConnect(session, cb) {
      sink.connections++;
      sink.closed.push(new Promise((resolve) => closers.set(session.id, resolve)));
      cb();
    },
    onClose(session) {
      closers.get(session.id)?.();
    },
    onRcptTo(address, _session, cb) {
      const refusal = b.rcpt?.(address.address);
      if (!refusal) return cb();
      cb(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        chunks.push(c);
        if (b.data === 'drop') for (const s of sockets) s.destroy();
      });
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        if (b.data === 'hang' || b.data === 'drop') return;
        if (typeof b.data === 'object') return cb(Object.assign(new Error(b.data.message), { responseCode: b.data.code }));
        const env = session.envelope;
        sink.messages.push({
          from: env.mailFrom ? env.mailFrom.address : '',
          to: env.rcptTo.map((r) => r.address),
          data,
          secure: session.secure,
          session: session.id,
          smtpUtf8: env.smtpUtf8 === true,
          bodyType: env.bodyType ?? '7bit',
        });
        for (const w of waiters.filter((w) => sink.messages.length >= w.n)) w.resolve();
        void (b.beforeReply?.() ?? Promise.resolve()).then(() => cb(null, `2.0.0 Ok: queued as SINK${sink.messages.length}`));
      });
    },
  });
  server.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.server.address() as AddressInfo).port;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return sink;
}

/** The processing used in the tests: a visible, deterministic transformation. */
export function markProcessed(message: Buffer, env: Envelope): Promise<Buffer> {
  return Promise.resolve(Buffer.concat([Buffer.from(`X-Processed: ${env.direction} ${env.to.join(',')}\r\n`), message]));
}

export const OUR = 'our.test';

/** A gateway on port 0; inbound goes to `inbound`, outbound to `outbound` (default the same sink): any SMTP server on 127.0.0.1. */
export async function startGateway(
  t: Test,
  sinks: { inbound: Pick<Sink, 'port'>; outbound?: Pick<Sink, 'port'> },
  over: Partial<GatewayOptions> = {},
): Promise<{ gw: Gateway; port: number; logs: object[] }> {
  const logs: object[] = [];
  const logger = { info: (o: object) => logs.push(o), warn: (o: object) => logs.push(o), error: (o: object) => logs.push(o) };
  const gw = await createGateway({
    listen: { host: '127.0.0.1', port: 0 },
    name: 'gw.our.test',
    ourDomains: [OUR],
    isInternal: ['127.0.0.0/8'],
    route: (_domain, direction) => [{ host: '127.0.0.1', port: (direction === 'inbound' ? sinks.inbound : (sinks.outbound ?? sinks.inbound)).port, tls: 'none' }],
    process: markProcessed,
    logger,
    timeouts: { shutdown: 200 },
    ...over,
  });
  const addr = await gw.listen();
  t.teardown(() => gw.close());
  return { gw, port: addr.port, logs };
}

/** A raw SMTP client over net for exact protocol checks: write lines, read replies. */
export class Raw {
  private parser = new ReplyParser();
  private replies: Reply[] = [];
  private waiting: { n: number; resolve(r: Reply[]): void } | undefined;
  closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.replies.push(...this.parser.push(c));
      this.check();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static async open(t: Test, port: number): Promise<Raw> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const raw = new Raw(socket);
    t.teardown(() => void socket.destroy());
    return raw;
  }

  private check(): void {
    if (this.waiting && this.replies.length >= this.waiting.n) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve(this.replies.splice(0, w.n));
    }
  }

  /** The next `n` replies. */
  read(n = 1): Promise<Reply[]> {
    return new Promise((resolve) => {
      this.waiting = { n, resolve };
      this.check();
    });
  }

  /** Replies received but not read yet. */
  get unread(): number {
    return this.replies.length;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends lines (one write: pipelined) and reads one reply per line. */
  async send(...lines: string[]): Promise<string[]> {
    this.write(lines.map((l) => l + '\r\n').join(''));
    return (await this.read(lines.length)).map(show);
  }

  /** Greeting and EHLO; returns the EHLO reply lines. */
  async hello(name = 'client.test'): Promise<string[]> {
    await this.read(1);
    this.write(`EHLO ${name}\r\n`);
    const [r] = await this.read(1);
    return r!.lines;
  }
}

export function show(r: Reply): string {
  return `${r.code} ${replyText(r)}`;
}

/** A small message with CRLF line ends; `body` lines as given. */
export function message(subject: string, ...body: string[]): string {
  return [`From: a@example.org`, `To: b@${OUR}`, `Subject: ${subject}`, `Message-ID: <${subject.replace(/\W/g, '')}@example.org>`, '', ...body].join('\r\n') + '\r\n';
}

/** Content as a client sends it after 354 (RFC 5321 §4.5.2 dot-stuffing) plus the final dot. */
export function asData(msg: string): string {
  return msg.replace(/^\./gm, '..') + '.\r\n';
}

/** The message as relayed: without the Received header the gateway put first. */
export function withoutReceived(data: Buffer): string {
  const s = data.toString('latin1');
  return s.replace(/^Received: [^\r]*(\r\n\t[^\r]*)*\r\n/, '');
}

/** A free port nobody listens on. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}
