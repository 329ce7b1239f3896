import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { Directory } from '../../directory/directory.js';
import { createDnsServer } from '../../directory/dns/dns.js';
import type { TunnelFormat } from '../../directory/record.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { Metrics } from '../../directory/metrics.js';
import { Discovery } from '../../federation/discovery.js';
import { stubResolver } from '../../federation/dns.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { MailPolicy } from '../../gateway/gateway.js';
import type { PolicySettings } from '../../gateway/policy.js';
import { createRouter } from '../../gateway/smtp/route.js';
import { createGateway, type GatewayLogger } from '../../gateway/smtp/smtp.js';
import { ConfigSchema } from '../config.js';

/** A mail server that keeps what it receives (the internal mail server of a loopback member). */
export interface CaptureSink {
  port: number;
  messages: { from: string; to: string[]; data: Buffer }[];
  received(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function captureSink(host = '127.0.0.1'): Promise<CaptureSink> {
  const waiters: { n: number; resolve(): void }[] = [];
  const sink: CaptureSink = {
    port: 0,
    messages: [],
    received: (n) => (sink.messages.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    hideSTARTTLS: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        sink.messages.push({ from: env.mailFrom ? env.mailFrom.address : '', to: env.rcptTo.map((r) => r.address), data: Buffer.concat(chunks) });
        for (const w of waiters.filter((w) => sink.messages.length >= w.n)) w.resolve();
        cb(null, `queued as SINK${sink.messages.length}`);
      });
    },
  });
  // smtp-server re-emits a client's connection errors (ECONNRESET when it dies mid-session); unheard, they would crash the process.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  sink.port = (server.server.address() as AddressInfo).port;
  return sink;
}

export interface LoopbackMember {
  domain: string;
  directory: Directory;
  /** The member's authoritative DNS (its `_mailmesh` pin, OPENPGPKEY, SMIMEA). */
  dnsPort: number;
  /** Its gateway's SMTP port. */
  smtpPort: number;
  /** Its internal mail server. */
  sink: CaptureSink;
  /** Every message its gateway received, before processing: what travelled to it. */
  arrived: Buffer[];
  metrics: Metrics;
}

export interface LoopbackOptions {
  /** The default tunnel format of both gateways. */
  format?: TunnelFormat;
  /** A policy per member (replaces the default, whose format is `format`). */
  policies?: [PolicySettings?, PolicySettings?];
  /** Send a member's outbound mail to this port instead of the peer's gateway. */
  smarthosts?: [number?, number?];
  logger?: GatewayLogger;
}

/**
 * Two member domains on loopback, each with its own directory (memory store, fresh keys), its
 * own authoritative DNS, its gateway and its internal mail server. Each gateway discovers the
 * other domain through the other's DNS and relays outbound mail to the other's gateway.
 * What `mailmesh demo` runs; nothing touches the network beyond 127.0.0.1.
 */
export async function loopbackPair(
  domains: [string, string],
  opts: LoopbackOptions = {},
): Promise<{ members: [LoopbackMember, LoopbackMember]; close(): Promise<void> }> {
  const closers: (() => Promise<unknown> | void)[] = [];
  const close = async () => {
    for (const f of closers.reverse()) await f();
  };
  try {
    const parts = [];
    for (const domain of domains) {
      const directory = await Directory.open(new MemoryStore(), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 } });
      await directory.addDomain(domain, { formats: ['pgp-mime', 'smime'] });
      const dns = await createDnsServer({
        directory,
        zone: `dir.${domain}`,
        ttl: 60,
        hostmaster: `hostmaster@${domain}`,
        nameservers: [`ns1.dir.${domain}`],
        nameserverAddresses: ['127.0.0.1'],
        // Also the authority for the top-level domain (`test`): the peer that resolves through this
        // server gets NXDOMAIN for a domain nobody serves, as from a recursive resolver on the
        // Internet, not REFUSED (which discovery takes for a lookup failure: 451, never a downgrade).
        authoritativeFor: [domain, domain.slice(domain.lastIndexOf('.') + 1)],
        directoryUrl: 'http://127.0.0.1:1',
      });
      closers.push(() => dns.close());
      const { port: dnsPort } = await dns.listen('127.0.0.1', 0);
      const sink = await captureSink();
      closers.push(() => sink.close());
      parts.push({ domain, directory, dnsPort, sink });
    }
    const members: LoopbackMember[] = parts.map((p) => ({ ...p, smtpPort: 0, arrived: [], metrics: new Metrics() }));
    // The configuration's default policy (what `serve` runs without a policy section), in the format asked for.
    const defaults = ConfigSchema.parse({}).policy;
    const standard: PolicySettings = { ...defaults, default: { ...defaults.default, format: opts.format ?? 'pgp-mime' } };
    for (const i of [1, 0]) {
      const self = members[i]!;
      const peer = members[1 - i]!;
      const discovery = new Discovery({
        sources: { resolver: stubResolver([`127.0.0.1:${peer.dnsPort}`]), wellKnownBase: () => 'http://127.0.0.1:1', clock: () => new Date(), timeoutMs: 500 },
        directories: [],
        pins: new MemoryPinStore(),
      });
      const policy = opts.policies?.[i] ?? standard;
      const mail = await MailPolicy.create({ directory: self.directory, discovery, policy, authservId: `mx.${self.domain}`, metrics: self.metrics });
      closers.push(() => mail.close());
      const gw = await createGateway({
        listen: { host: '127.0.0.1', port: 0 },
        name: `mx.${self.domain}`,
        ...mail.gatewayHooks(),
        process: async (m, env) => {
          self.arrived.push(m);
          return mail.process(m, env);
        },
        isInternal: ['127.0.0.0/8'],
        // The peer's gateway port is known only once it listens: build the router per call.
        route: (d, dir) => createRouter({ internal: { host: '127.0.0.1', port: self.sink.port, tls: 'none' }, smarthost: { host: '127.0.0.1', port: opts.smarthosts?.[i] ?? peer.smtpPort, tls: 'may' } })(d, dir),
        logger: opts.logger,
      });
      closers.push(() => gw.close());
      self.smtpPort = (await gw.listen()).port;
    }
    return { members: members as [LoopbackMember, LoopbackMember], close };
  } catch (e) {
    await close();
    throw e;
  }
}
