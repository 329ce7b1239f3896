// The SMTP command parser: smtp-server's command reading plus the gateway's handlers
// (gateway/smtp/smtp.ts, listener.ts) over a real loopback connection, with a sink as the next
// hop. Each input is what one client sends (pipelined) before it closes its side. A finding is
// an uncaught exception or unhandled rejection in the gateway, or a reply that is not SMTP.
import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { ReplyParser } from '../../gateway/smtp/client.js';
import { createGateway, type Gateway } from '../../gateway/smtp/smtp.js';
import { invariant, type FuzzTarget } from '../target.js';

let gateway: Gateway;
let sink: SMTPServer;
let port = 0;
const uncaught: unknown[] = [];
const collect = (e: unknown) => void uncaught.push(e);

function converse(data: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1');
    // Bounded: a connection the gateway keeps open after our FIN is dropped after 2 s.
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.end(data);
  });
}

const target: FuzzTarget = {
  name: 'smtp-command',
  description: 'one SMTP client session (pipelined commands, DATA, RSET, BDAT, STARTTLS, overlong lines) against the gateway and a sink',
  maxLen: 8192,
  dictionary: ['\r\n', 'EHLO client.test\r\n', 'HELO x\r\n', 'MAIL FROM:<a@partner.test>', ' SIZE=100', ' BODY=8BITMIME', ' SMTPUTF8', 'RCPT TO:<bob@fuzz.example>', 'RCPT TO:<x@elsewhere.test>', 'DATA\r\n', '\r\n.\r\n', 'RSET\r\n', 'NOOP\r\n', 'QUIT\r\n', 'VRFY ', 'BDAT 10 LAST\r\n', 'STARTTLS\r\n', 'AUTH PLAIN ', 'XCLIENT ', '<>', '"', '@'],
  async setup() {
    sink = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, onData: (stream, _s, cb) => (stream.resume(), stream.on('end', () => cb())) });
    const sinkPort = await new Promise<number>((r) => sink.listen(0, '127.0.0.1', () => r((sink.server.address() as net.AddressInfo).port)));
    gateway = await createGateway({
      listen: { host: '127.0.0.1', port: 0 },
      name: 'gw.fuzz.test',
      ourDomains: ['fuzz.example'],
      isInternal: ['127.0.0.0/8'],
      route: () => [{ host: '127.0.0.1', port: sinkPort, tls: 'none' }],
      process: async (m) => m,
      limits: { size: 64 * 1024 },
      timeouts: { idle: 5000, shutdown: 200 },
    });
    port = (await gateway.listen()).port;
    process.on('uncaughtException', collect);
    process.on('unhandledRejection', collect);
  },
  async teardown() {
    process.off('uncaughtException', collect);
    process.off('unhandledRejection', collect);
    await gateway.close();
    await new Promise<void>((r) => sink.close(() => r()));
  },
  async fuzz(data) {
    const answer = await converse(data);
    if (uncaught.length) throw uncaught.splice(0)[0];
    // Everything before a STARTTLS handshake is SMTP replies (RFC 5321 §4.2).
    const text = answer.toString('latin1');
    const tls = text.search(/^220 [^\n]*TLS[^\n]*\n/im);
    const plain = tls >= 0 ? answer.subarray(0, text.indexOf('\n', tls) + 1) : answer.subarray(0, answer.lastIndexOf(0x0a) + 1);
    const replies = new ReplyParser().push(plain);
    invariant(replies.length === 0 || replies[0]!.code === 220 || replies[0]!.code === 421, 'the session opens with a greeting');
  },
  // Nothing is a clean rejection here: the gateway answers bad commands itself, and a reply
  // that is not SMTP (ReplyParser's NEXT_HOP_PROTOCOL) is a finding.
  expected: () => false,
};
export default target;
