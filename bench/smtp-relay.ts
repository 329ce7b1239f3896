/**
 * SMTP relay throughput on loopback, side by side in one run (docs/architecture.md "Performance anchors":
 * 10 KB messages, 20 persistent sessions, TCP_NODELAY on every socket). The targets:
 *
 *   smtp-sink                  Postfix's smtp-sink: the anchor "smtp-source → smtp-sink direct"
 *   Node sink                  a bare smtp-server that counts messages (no work at all)
 *   bare relay                 smtp-server → SmtpClient next hop, no crypto: the anchor "bare relay"
 *   gateway, no crypto         our queue-less relay (createGateway), process() returns the message
 *   bare relay + encrypt+sign  the bare relay doing openpgp.js encrypt+sign with parsed keys: the ~725 msg/s anchor
 *   bare 2 hops, 2 crypto      bare relay encrypt+sign → bare relay decrypt+verify → sink
 *   tunnel PGP/MIME, S/MIME    loopbackPair: alpha's gateway encrypts+signs, beta's decrypts+verifies
 *
 * Every relay ends in a Node sink on loopback; all of them run in this one process (one core),
 * like the anchors. The load generator is Postfix's smtp-source (`-d`: persistent sessions) when
 * it is installed, else an in-process one (SmtpClient sessions; BENCH_GENERATOR=node forces it).
 * Each target gets a warm-up, then a fixed message count sized to about `seconds` per round;
 * rounds interleave the targets. Prints msg/s and the ratios. Run by hand, never a test.
 *
 *   npm run bench:smtp -- [seconds=10] [rounds=2] [sessions=20] [only=comma-separated target keys]
 *
 * Needs the Debian package postfix (smtp-source, smtp-sink; its daemon is not used or started).
 */
import { spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import * as openpgp from 'openpgp';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { readOpenPgpKey } from '../directory/openpgp.js';
import { loopbackPair, type LoopbackMember } from '../cli/demo/loopback.js';
import { SmtpClient } from '../gateway/smtp/client.js';
import { createGateway } from '../gateway/smtp/smtp.js';
import { freePort, run } from '../test/helpers.js';
import { interleave, mean, ratio, table } from './lib.js';

const seconds = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 2);
const sessions = Number(process.argv[4] ?? 20);
const only = process.argv[5]?.split(',');
const PAYLOAD = 10_240;
const FROM = 'a@alpha.test';
const TO = 'b@beta.test';

const hasSmtpSource = process.env.BENCH_GENERATOR !== 'node' && (await run('sh', ['-c', 'command -v smtp-source && command -v smtp-sink'], { allowFail: true })).code === 0;
const closers: (() => Promise<unknown> | void)[] = [];

// What every Node SMTP server here shares: no AUTH/STARTTLS, no reverse lookup, TCP_NODELAY.
const SERVER: SMTPServerOptions = {
  logger: false,
  disableReverseLookup: true,
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  hideSTARTTLS: true,
  noDelay: true,
};

async function listen(server: SMTPServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.server.address() as AddressInfo).port;
}

function readMessage(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** A sink that counts messages and keeps the last one (to check what arrived). */
async function countingSink(): Promise<{ port: number; count: () => number; last: () => Buffer | undefined }> {
  let count = 0;
  let last: Buffer | undefined;
  const server = new SMTPServer({
    ...SERVER,
    onData(stream, _s, cb) {
      void readMessage(stream).then((m) => {
        count++;
        last = m;
        cb(null, 'queued');
      }, cb);
    },
  });
  return { port: await listen(server), count: () => count, last: () => last };
}

/**
 * The bare relay: smtp-server, and per upstream session one persistent SmtpClient to the next
 * hop; at the end of DATA it transforms the message and relays it (MAIL, RCPT, DATA), answering
 * the upstream with the next hop's result. No policy, no Received header, no limits.
 */
async function bareRelay(next: number, transform: (m: Buffer) => Promise<Buffer>): Promise<number> {
  const hops = new Map<string, Promise<SmtpClient>>();
  const relay = async (m: Buffer, session: SMTPServerSession) => {
    let hop = hops.get(session.id);
    if (!hop) hops.set(session.id, (hop = SmtpClient.connect({ host: '127.0.0.1', port: next, helo: 'relay.bench', tls: 'none' })));
    const c = await hop;
    const env = session.envelope;
    const steps = [() => c.mail(env.mailFrom ? env.mailFrom.address : ''), ...env.rcptTo.map((r) => () => c.rcpt(r.address))];
    for (const step of steps) {
      const r = await step();
      if (r.code !== 250) throw new Error(`next hop: ${r.code} ${r.lines.join(' ')}`);
    }
    const r = await c.data(await transform(m));
    if (r.code !== 250) throw new Error(`next hop: ${r.code} ${r.lines.join(' ')}`);
  };
  const server = new SMTPServer({
    ...SERVER,
    onData(stream, session, cb) {
      void readMessage(stream)
        .then((m) => relay(m, session))
        .then(() => cb(null, 'relayed'), (e: Error) => cb(e));
    },
    onClose(session) {
      const hop = hops.get(session.id);
      hops.delete(session.id);
      void hop?.then((c) => c.quit(), () => undefined);
    },
  });
  return listen(server);
}

/** Postfix's smtp-sink on a free port, in the foreground, stopped at the end; ready once it greets. */
async function smtpSink(): Promise<number> {
  const port = await freePort();
  const proc = spawn('smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '256'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  process.on('exit', () => proc.exitCode === null && proc.kill('SIGTERM'));
  closers.push(() => {
    proc.kill('SIGTERM');
    return exited;
  });
  // It prints nothing when it listens: connect until it greets (bounded).
  for (let attempt = 0; ; attempt++) {
    const greeted = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.once('data', (d) => done(d.toString().startsWith('220')));
      s.once('error', () => done(false));
    });
    if (greeted) return port;
    if (proc.exitCode !== null || attempt > 200) throw new Error('smtp-sink did not start');
    await new Promise((r) => setTimeout(r, 25));
  }
}

// The in-process generator's message: what smtp-source sends (header, then PAYLOAD octets in 80-octet lines).
const inProcessMessage = Buffer.from(
  `From: <${FROM}>\r\nTo: <${TO}>\r\nDate: ${new Date().toUTCString()}\r\nMessage-Id: <bench@bench.test>\r\nSubject: bench\r\n\r\n` +
    ('X'.repeat(78) + '\r\n').repeat(Math.ceil(PAYLOAD / 80)),
);

/** Sends `count` messages over `sessions` persistent sessions; resolves with the seconds it took. */
async function generate(port: number, count: number): Promise<number> {
  const start = performance.now();
  if (hasSmtpSource) {
    await run('smtp-source', ['-d', '-s', String(sessions), '-l', String(PAYLOAD), '-m', String(count), '-M', 'bench.test', '-f', FROM, '-t', TO, '-S', 'bench', `127.0.0.1:${port}`]);
  } else {
    let left = count;
    await Promise.all(
      Array.from({ length: Math.min(sessions, count) }, async () => {
        const c = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'bench.test', tls: 'none' });
        while (left-- > 0) {
          for (const r of [await c.mail(FROM), await c.rcpt(TO), await c.data(inProcessMessage)]) {
            if (r.code !== 250) throw new Error(`refused: ${r.code} ${r.lines.join(' ')}`);
          }
        }
        await c.quit();
      }),
    );
  }
  return (performance.now() - start) / 1000;
}

// ---- the targets ---------------------------------------------------------------------------

interface Target {
  key: string;
  label: string;
  /** docs/architecture.md's figure for the same setup, if it has one. */
  anchor?: number;
  port: number;
  /** Messages that reached the end of the path so far (undefined: cannot tell, smtp-sink). */
  received(): number | undefined;
  /** Throws unless the last message that arrived went the way it should. */
  check(): void;
  /** Drops what was kept of arrived messages. */
  forget?(): void;
}

const targets: Target[] = [];
const wanted = (key: string) => !only || only.includes(key);
const delivered = (last: Buffer | undefined, what: string) => {
  if (!last || !last.includes(`Subject: bench`) || !last.includes('X'.repeat(78))) throw new Error(`${what}: the original did not arrive`);
  return last.toString('latin1');
};

if (hasSmtpSource && wanted('smtp-sink')) {
  targets.push({ key: 'smtp-sink', label: 'smtp-sink (Postfix), direct', anchor: 10_600, port: await smtpSink(), received: () => undefined, check: () => undefined });
}

const sink = await countingSink();
if (wanted('node-sink')) targets.push({ key: 'node-sink', label: 'Node sink (smtp-server), direct', port: sink.port, received: sink.count, check: () => delivered(sink.last(), 'Node sink') });

if (wanted('bare')) {
  targets.push({ key: 'bare', label: 'bare relay, no crypto', anchor: 2_630, port: await bareRelay(sink.port, async (m) => m), received: sink.count, check: () => delivered(sink.last(), 'bare relay') });
}

if (wanted('gateway')) {
  const gw = await createGateway({
    listen: { host: '127.0.0.1', port: 0 },
    name: 'gw.bench',
    ourDomains: ['beta.test'],
    isInternal: ['127.0.0.0/8'],
    route: () => [{ host: '127.0.0.1', port: sink.port, tls: 'none' }],
    process: async (m) => m,
    timeouts: { shutdown: 500 },
  });
  closers.push(() => gw.close());
  const port = (await gw.listen()).port;
  targets.push({ key: 'gateway', label: 'mailmesh gateway, no crypto', port, received: sink.count, check: () => void (/^Received: from /.test(delivered(sink.last(), 'gateway')) || fail('gateway: no Received header')) });
}

function fail(why: string): never {
  throw new Error(why);
}

// The tunnels: two full members each (directory, DNS, discovery, MailPolicy, gateway, sink).
const pairs: Partial<Record<'pgp-mime' | 'smime', [LoopbackMember, LoopbackMember]>> = {};
for (const format of ['pgp-mime', 'smime'] as const) {
  const needed = wanted(`tunnel-${format}`) || (format === 'pgp-mime' && (wanted('bare-pgp') || wanted('bare-2')));
  if (!needed) continue;
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], { format });
  closers.push(close);
  pairs[format] = members;
}

// The openpgp.js anchors use the pgp-mime pair's domain keys, parsed once.
const keyPair = pairs['pgp-mime'];
if (keyPair && (wanted('bare-pgp') || wanted('bare-2'))) {
  const [alpha, beta] = keyPair;
  const alphaKey = await openpgp.readPrivateKey({ armoredKey: (await alpha.directory.getSecrets('alpha.test')).openpgp!.armored });
  const betaKey = await openpgp.readPrivateKey({ armoredKey: (await beta.directory.getSecrets('beta.test')).openpgp!.armored });
  const alphaPublic = await readOpenPgpKey((await alpha.directory.getRecord('alpha.test')).keys.openpgp!.armored);
  const betaPublic = await readOpenPgpKey((await beta.directory.getRecord('beta.test')).keys.openpgp!.armored);
  // RFC 4880 §5.9 binary literal data, one-pass signed (§5.4) and encrypted, armored (§6.2), as our PGP/MIME tunnel does.
  const encryptSign = async (m: Buffer) =>
    Buffer.from(
      'Content-Type: application/octet-stream\r\n\r\n' +
        (await openpgp.encrypt({ message: await openpgp.createMessage({ binary: m, format: 'binary' }), encryptionKeys: betaPublic, signingKeys: alphaKey, format: 'armored' })).replace(/\r?\n/g, '\r\n'),
    );
  const decryptVerify = async (m: Buffer) => {
    const armored = m.subarray(m.indexOf('\r\n\r\n') + 4).toString('latin1');
    const message = await openpgp.readMessage({ armoredMessage: armored });
    // expectSigned: a missing or bad signature throws (and the upstream gets 451).
    const { data } = await openpgp.decrypt({ message, decryptionKeys: betaKey, verificationKeys: alphaPublic, expectSigned: true, format: 'binary' });
    return Buffer.from(data);
  };
  if (wanted('bare-pgp')) {
    const port = await bareRelay(sink.port, encryptSign);
    targets.push({ key: 'bare-pgp', label: 'bare relay + openpgp.js encrypt+sign', anchor: 725, port, received: sink.count, check: () => void (sink.last()?.includes('-----BEGIN PGP MESSAGE-----') || fail('bare-pgp: not encrypted')) });
  }
  if (wanted('bare-2')) {
    const port = await bareRelay(await bareRelay(sink.port, decryptVerify), encryptSign);
    targets.push({ key: 'bare-2', label: 'bare relay encrypt+sign → bare relay decrypt+verify', port, received: sink.count, check: () => delivered(sink.last(), 'bare 2 hops') });
  }
}

for (const [format, members] of Object.entries(pairs)) {
  if (!wanted(`tunnel-${format}`)) continue;
  const [alpha, beta] = members;
  const between = format === 'pgp-mime' ? /Content-Type: multipart\/encrypted;/ : /Content-Type: application\/pkcs7-mime; smime-type=authEnveloped-data/;
  targets.push({
    key: `tunnel-${format}`,
    label: `mailmesh tunnel alpha → beta, ${format === 'pgp-mime' ? 'PGP/MIME' : 'S/MIME'}`,
    port: alpha.smtpPort,
    received: () => beta.sink.messages.length,
    check() {
      const got = delivered(beta.sink.messages.at(-1)?.data, `tunnel ${format}`);
      if (!/^Authentication-Results: mx\.beta\.test;[\s\S]*mailmesh=pass/m.test(got)) fail(`tunnel ${format}: not verified at beta`);
      if (!between.test(beta.arrived.at(-1)?.toString('latin1') ?? '')) fail(`tunnel ${format}: not encrypted between the gateways`);
    },
    forget() {
      beta.sink.messages.length = 0;
      alpha.arrived.length = 0;
      beta.arrived.length = 0;
    },
  });
}

// ---- measuring -------------------------------------------------------------------------------

/** One bounded run of `count` messages; checks that all of them arrived, and how. */
async function measure(t: Target, count: number): Promise<number> {
  t.forget?.();
  const before = t.received() ?? 0;
  const took = await generate(t.port, count);
  const after = t.received();
  if (after !== undefined && after - before !== count) throw new Error(`${t.label}: ${after - before} of ${count} messages arrived`);
  t.check();
  t.forget?.();
  return count / took;
}

// Warm-up (JIT, sessions, discovery caches), which also sizes each target's count to ~`seconds`.
const counts = new Map<Target, number>();
for (const t of targets) {
  const rate = await measure(t, sessions * 10);
  counts.set(t, Math.max(sessions * 10, Math.round(rate * seconds)));
}
const { results, load } = await interleave(targets, rounds, (t) => measure(t, counts.get(t)!));
const rate = new Map(targets.map((t, i) => [t.key, mean(results[i]!)]));

const REF: Record<string, [string, number?]> = {
  'node-sink': ['smtp-sink'],
  bare: ['smtp-sink', 2_630 / 10_600],
  gateway: ['bare'],
  'bare-pgp': ['bare', 725 / 2_630],
  'bare-2': ['bare-pgp'],
  'tunnel-pgp-mime': ['bare-2'],
  'tunnel-smime': ['bare-2'],
};
console.log(`${hasSmtpSource ? `smtp-source -d -s ${sessions} -l ${PAYLOAD} -m <count>` : `in-process generator, ${sessions} sessions, ${inProcessMessage.length}-octet messages`}; ~${seconds} s per target and round; ${rounds} rounds`);
console.log(`load average ${load}`);
console.log(
  table(
    ['key', 'target', 'DESIGN msg/s', 'msg/s (mean)', 'msg/s per round', 'count', 'ratio to smtp-sink', 'ratio to bare+encrypt', 'reference', 'ratio to reference', 'DESIGN ratio'],
    targets.map((t, i) => {
      const r = rate.get(t.key)!;
      const [ref, designRatio] = REF[t.key] ?? [];
      return [
        t.key,
        t.label,
        t.anchor?.toLocaleString('en') ?? '',
        Math.round(r),
        results[i]!.map(Math.round).join(' / '),
        counts.get(t)!,
        rate.has('smtp-sink') ? ratio(r, rate.get('smtp-sink')!) : '-',
        rate.has('bare-pgp') ? ratio(r, rate.get('bare-pgp')!) : '-',
        ref ?? '',
        ref && rate.has(ref) ? ratio(r, rate.get(ref)!) : '-',
        designRatio ? designRatio.toFixed(2) : '',
      ];
    }),
  ),
);
for (const f of closers.reverse()) await f();
