/**
 * SMTP relay throughput on loopback (DESIGN.md "Performance anchors"): N persistent client
 * sessions send 10 KB messages (a) straight to a sink and (b) through the gateway (no crypto:
 * process() returns the message) to the same sink. Prints msg/s of both and their ratio.
 *
 *   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/smtp-relay.ts [sessions] [seconds]
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { SmtpClient } from '../gateway/smtp/client.js';
import { createGateway } from '../gateway/smtp/smtp.js';

const sessions = Number(process.argv[2] ?? 20);
const seconds = Number(process.argv[3] ?? 5);
// About 10 KB in 78-octet lines.
const body = Buffer.from(`From: a@example.org\r\nTo: b@our.test\r\nSubject: bench\r\n\r\n${('x'.repeat(76) + '\r\n').repeat(130)}`);

const sink = new SMTPServer({
  logger: false,
  disableReverseLookup: true,
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  hideSTARTTLS: true,
  noDelay: true,
  onData(stream, _s, cb) {
    stream.on('data', () => undefined);
    stream.on('end', () => cb(null, 'queued'));
  },
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const sinkPort = (sink.server.address() as AddressInfo).port;

const gw = await createGateway({
  listen: { host: '127.0.0.1', port: 0 },
  name: 'gw.bench',
  ourDomains: ['our.test'],
  isInternal: ['127.0.0.0/8'],
  route: () => [{ host: '127.0.0.1', port: sinkPort, tls: 'none' }],
  process: async (m) => m,
  timeouts: { shutdown: 500 },
});
const gwPort = (await gw.listen()).port;

async function load(port: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  let sent = 0;
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const c = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'bench.test', tls: 'none' });
      while (Date.now() < deadline) {
        if ((await c.mail('a@example.org')).code !== 250 || (await c.rcpt('b@our.test')).code !== 250) throw new Error('refused');
        if ((await c.data(body)).code !== 250) throw new Error('DATA refused');
        sent++;
      }
      await c.quit();
    }),
  );
  return sent / seconds;
}

const direct = await load(sinkPort);
const relayed = await load(gwPort);
console.log(JSON.stringify({ sessions, seconds, sizeBytes: body.length, directMsgPerSec: Math.round(direct), gatewayMsgPerSec: Math.round(relayed), ratio: +(relayed / direct).toFixed(3) }));
await gw.close();
await new Promise<void>((r) => sink.close(() => r()));
