import { writeFileSync } from 'node:fs';
import { createServer as createHttp } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { selfSignedCertificate, type TlsKeyPair } from '../../directory/tls.js';
import { EXIT } from '../../cli/exit.js';
import { startZone } from '../federation/helpers.js';
import { startSink } from '../gateway/smtp/helpers.js';
import { tempDir } from '../helpers.js';
import { startServe } from './helpers.js';

// `mailmesh serve` as a supervisor drives it (docs/operations.md "Signals"): SIGHUP, SIGTERM.
t.setTimeout(600_000);

/** One SMTP (or TLS) connection, read reply by reply (RFC 5321 §4.2: the last line has a space after the code). */
class Dialogue {
  #buf = '';
  #waiting: (() => void)[] = [];
  ended = false;

  constructor(public socket: net.Socket | tls.TLSSocket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buf += d;
      for (const w of this.#waiting.splice(0)) w();
    });
    socket.on('close', () => {
      this.ended = true;
      for (const w of this.#waiting.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Dialogue> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    const d = new Dialogue(s);
    await d.reply();
    return d;
  }

  /** The next whole reply, '' when the connection closed first. */
  async reply(): Promise<string> {
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3} [^\n]*\n/.exec(this.#buf);
      if (m) {
        this.#buf = this.#buf.slice(m[0].length);
        return m[0];
      }
      if (this.ended) return '';
      await new Promise<void>((r) => this.#waiting.push(r));
    }
  }

  async send(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  /** STARTTLS (RFC 3207) and the certificate the server presented. */
  async startTls(): Promise<{ tls: Dialogue; cn: string }> {
    await this.send('EHLO client.test');
    const go = await this.send('STARTTLS');
    if (!go.startsWith('220')) throw new Error(`STARTTLS: ${go}`);
    this.socket.removeAllListeners('data');
    const s = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    return { tls: new Dialogue(s), cn: (s.getPeerCertificate().subject as { CN: string }).CN };
  }
}

/** Resolves once serve has logged `msg` (functional wait). */
async function logged(lines: Record<string, unknown>[], msg: string, count = 1): Promise<void> {
  while (lines.filter((l) => l.msg === msg).length < count) await new Promise((r) => setTimeout(r, 50));
}

/** The certificate's CN that a new HTTPS handshake sees, and the TLS socket (left open). */
async function httpsHandshake(t: Test, address: string): Promise<{ cn: string; socket: tls.TLSSocket }> {
  const [, port] = address.split(/:(?=\d+$)/);
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false });
  t.teardown(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  return { cn: (socket.getPeerCertificate().subject as { CN: string }).CN, socket };
}

/** GET /healthz on an open connection: its status line. */
async function healthz(socket: tls.TLSSocket): Promise<string> {
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  return new Promise((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1').split('\r\n')[0]!)));
}

function writePair(dir: string, pair: TlsKeyPair): void {
  writeFileSync(join(dir, 'cert.pem'), pair.cert);
  writeFileSync(join(dir, 'key.pem'), pair.key);
}

t.test('SIGHUP: new certificates for new handshakes (HTTPS, STARTTLS), open connections kept; the new policy for the next transaction', async (t) => {
  const cwd = tempDir(t);
  const [a, b] = [await selfSignedCertificate(['a.mailmesh.test', '127.0.0.1']), await selfSignedCertificate(['b.mailmesh.test', '127.0.0.1'])];
  writePair(cwd, a);
  // Discovery finds no key for peer.test: the zone has no names, the well-known base answers 404.
  const zone = await startZone(t);
  const web = createHttp((_q, r) => void r.writeHead(404).end());
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => void web.close());
  const sink = await startSink(t, { tls: a });
  const config = (fallback: string) =>
    writeFileSync(join(cwd, 'mailmesh.yaml'), stringify({
      http: { tls: { cert: 'cert.pem', key: 'key.pem' }, idleTimeoutSec: 600 },
      smtp: { tlsCert: 'cert.pem', tlsKey: 'key.pem' },
      policy: { default: { fallback } },
    }));
  config('reject');
  const s = await startServe(t, cwd, {
    MAILMESH_FEDERATION__RESOLVERS: `127.0.0.1:${zone.port}`, MAILMESH_FEDERATION__WELL_KNOWN_BASE: `http://127.0.0.1:${(web.address() as AddressInfo).port}/{domain}`,
    MAILMESH_SMTP__SMARTHOST: `127.0.0.1:${sink.port}`,
  });
  const smtpPort = Number(s.addresses.smtp.split(':').pop());

  const https1 = await httpsHandshake(t, s.addresses.http);
  t.equal(https1.cn, 'a.mailmesh.test', 'HTTPS: the first certificate');
  const smtp1 = await (await Dialogue.open(smtpPort)).startTls();
  t.equal(smtp1.cn, 'a.mailmesh.test', 'STARTTLS: the first certificate');
  const plain = await Dialogue.open(smtpPort);
  await plain.send('EHLO client.test');
  t.match(await plain.send('MAIL FROM:<alice@demo.mailmesh.test>'), /^250/);
  t.match(await plain.send('RCPT TO:<bob@peer.test>'), /^5\d\d/, 'fallback reject: no key, refused');

  // A broken certificate file: refused, the old configuration stays.
  writeFileSync(join(cwd, 'cert.pem'), 'not a certificate\n');
  s.child.kill('SIGHUP');
  await logged(s.lines, 'reload refused; the running configuration stays');
  t.equal((await httpsHandshake(t, s.addresses.http)).cn, 'a.mailmesh.test', 'an invalid file changes nothing');

  writePair(cwd, b);
  config('tls');
  s.child.kill('SIGHUP');
  await logged(s.lines, 'configuration reloaded');
  t.equal((await httpsHandshake(t, s.addresses.http)).cn, 'b.mailmesh.test', 'HTTPS: a new handshake sees the new certificate');
  t.equal((await (await Dialogue.open(smtpPort)).startTls()).cn, 'b.mailmesh.test', 'STARTTLS: a new handshake sees the new certificate');
  t.equal(await healthz(https1.socket), 'HTTP/1.1 200 OK', 'the HTTPS connection opened before still works');
  t.match(await smtp1.tls.send('EHLO client.test'), /^250/, 'the STARTTLS session opened before still works');

  await plain.send('RSET');
  t.match(await plain.send('MAIL FROM:<alice@demo.mailmesh.test>'), /^250/);
  t.match(await plain.send('RCPT TO:<bob@peer.test>'), /^250/, 'fallback tls: accepted');
  t.match(await plain.send('DATA'), /^354/);
  t.match(await plain.send('Subject: hi\r\n\r\nafter the reload\r\n.'), /^250/);
  await sink.received(1);
  t.ok(sink.messages[0]!.secure, 'relayed over TLS, as the tls fallback asks');
  s.child.kill('SIGTERM');
  t.equal(await s.exited, EXIT.OK);
});

t.test('SIGTERM: the transaction in flight gets its 250, idle sessions 421, new connections are refused, exit 0', async (t) => {
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  const sink = await startSink(t, { beforeReply: () => slow });
  const s = await startServe(t, tempDir(t), { MAILMESH_SMTP__INTERNAL_SERVER: `127.0.0.1:${sink.port}`, MAILMESH_SMTP__DRAIN_SEC: '300' });
  const port = Number(s.addresses.smtp.split(':').pop());

  const idle = await Dialogue.open(port);
  t.match(await idle.send('EHLO client.test'), /^250/);
  const busy = await Dialogue.open(port);
  await busy.send('EHLO client.test');
  await busy.send('MAIL FROM:<someone@elsewhere.test>');
  t.match(await busy.send('RCPT TO:<bob@demo.mailmesh.test>'), /^250/);
  t.match(await busy.send('DATA'), /^354/);
  busy.socket.write('Subject: in flight\r\n\r\nsent before SIGTERM\r\n.\r\n');
  await sink.received(1); // the next hop has it and holds its reply

  s.child.kill('SIGTERM');
  t.match(await idle.reply(), /^421 /, 'the idle session gets 421');
  const refused = await Dialogue.open(port).then(() => 'connected', (e: NodeJS.ErrnoException) => e.code);
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused');
  release();
  t.match(await busy.reply(), /^250 /, 'the transaction in flight gets its 250');
  t.match(await busy.reply(), /^421 /, 'then 421: the gateway is shutting down');
  t.equal(await s.exited, EXIT.OK, 'a clean stop exits 0');
  t.match(sink.messages[0]!.data.toString(), 'sent before SIGTERM');
});
