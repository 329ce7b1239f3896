import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { lowerName, nameToWire, parseQuery } from '../../directory/dnswire.js';
import { captureSink, type CaptureSink } from '../../cli/demo/loopback.js';
import { SmtpClient } from '../../gateway/smtp/client.js';
import { TestZone } from '../federation/helpers.js';
import { freePort, run } from '../helpers.js';

// The built CLI (`npm run build` before running these files alone).
export const MAIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;

/** Runs `mailmesh -c <config> …args` in its own process; never throws on a non-zero exit (the caller asserts). */
export async function cli(config: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await run('node', [MAIN, '-c', config, ...args], { env: { MAILMESH_LOG__PRETTY: 'false' }, allowFail: true });
  return { code: r.code, out: r.stdout.toString(), err: r.stderr };
}

/**
 * The recursive resolver of the test federation: a UDP+TCP DNS server on one port that hands
 * each query for a name under one of `routes`' suffixes to that member's authoritative server
 * (a directory's DNS face with `dns.authoritativeFor`), and answers NXDOMAIN for every other
 * name, as the Internet would for a name nobody serves.
 */
export async function startResolver(t: Test, routes: () => Map<string, number>): Promise<number> {
  const nx = new TestZone();
  const upstream = (msg: Buffer): number | undefined => {
    let key: string;
    try {
      key = parseQuery(msg).key;
    } catch {
      return undefined;
    }
    for (const [suffix, port] of routes()) if (key.endsWith(lowerName(nameToWire(suffix)).toString('latin1'))) return port;
    return undefined;
  };
  const viaUdp = (msg: Buffer, port: number) =>
    new Promise<Buffer | undefined>((resolve) => {
      const s = dgram.createSocket('udp4');
      const done = (b?: Buffer) => {
        clearTimeout(timer);
        s.close();
        resolve(b);
      };
      const timer = setTimeout(() => done(), 3000);
      s.on('message', (m) => done(m));
      s.on('error', () => done());
      s.send(msg, port, '127.0.0.1');
    });
  const viaTcp = (msg: Buffer, port: number) =>
    new Promise<Buffer | undefined>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const done = (b?: Buffer) => {
        s.destroy();
        resolve(b);
      };
      s.setTimeout(3000, () => done());
      s.on('error', () => done());
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      s.end(Buffer.concat([len, msg]));
    });
  const answer = async (msg: Buffer, udp: boolean) => {
    const port = upstream(msg);
    if (port === undefined) return nx.answer(msg, udp);
    return udp ? viaUdp(msg, port) : viaTcp(msg, port);
  };
  const port = await freePort();
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m, r) => void answer(m, true).then((a) => a && udp.send(a, r.port, r.address)));
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', resolve));
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => s.destroy());
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        void answer(q, false).then((a) => {
          if (!a) return void s.destroy();
          const len = Buffer.alloc(2);
          len.writeUInt16BE(a.length);
          s.write(Buffer.concat([len, a]));
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  t.teardown(() => {
    udp.close();
    tcp.close();
  });
  return port;
}

/** One member of the test federation: its domain, directory and gateway in one `mailmesh serve`. */
export interface Member {
  domain: string;
  dir: string;
  config: string;
  ports: { http: number; dns: number; smtp: number };
  zone: string;
  sink: CaptureSink;
  /** The serve process, once started; its log lines (JSON) are in `log`. */
  child?: ChildProcess;
  log: string[];
}

/** Ports, a sink and a data directory for a member; the configuration is written by writeConfig once every member is known. */
export async function member(t: Test, root: string, domain: string, zone: string): Promise<Member> {
  const dir = join(root, domain);
  mkdirSync(dir, { recursive: true });
  const sink = await captureSink();
  t.teardown(() => sink.close());
  return { domain, dir, config: join(dir, 'mailmesh.yaml'), ports: { http: await freePort(), dns: await freePort(), smtp: await freePort() }, zone, sink, log: [] };
}

/**
 * Writes the member's mailmesh.yaml: SQLite store and master key in its directory, every face
 * on 127.0.0.1 at the ports chosen, its DNS face authoritative for its own zone (so the
 * `_mailmesh` TXT follows its record), outbound mail to `peer`'s gateway, both directories for
 * discovery and joins, `resolver` for proofs, and `extra` merged on top (per section).
 */
export function writeConfig(m: Member, o: { members: Member[]; peer: Member; resolver: number; extra?: Record<string, Record<string, unknown>> }): void {
  const base: Record<string, Record<string, unknown>> = {
    store: { url: `sqlite:${join(m.dir, 'mailmesh.db')}` },
    masterKey: { file: join(m.dir, 'master.key') },
    // serve posts what a CLI post could not (below) at its next check: every second here.
    keys: { openpgp: 'curve25519', checkIntervalSec: 1 },
    http: { host: '127.0.0.1', port: m.ports.http, rateLimit: { max: 0 } },
    dns: {
      host: '127.0.0.1', port: m.ports.dns, zone: m.zone, ttl: 1, authoritativeFor: [m.domain], nameservers: [`ns1.${m.zone}`], nameserverAddresses: ['127.0.0.1'],
      rrl: { responsesPerSecond: 0 },
    },
    ldap: { enabled: false },
    smtp: {
      host: '127.0.0.1', port: m.ports.smtp, name: `mx.${m.domain}`, ourDomains: [m.domain], internalServer: `127.0.0.1:${m.sink.port}`,
      smarthost: `127.0.0.1:${o.peer.ports.smtp}`, nextHopTls: 'none', maxConnectionsPerAddress: 0,
    },
    federation: {
      resolvers: [`127.0.0.1:${o.resolver}`],
      dnsTimeoutMs: 2000,
      wellKnownBase: 'http://127.0.0.1:1/{domain}',
      join: { allowPrivateAddresses: true },
      directories: o.members.map((d) => ({ url: `http://127.0.0.1:${d.ports.http}`, zone: d.zone, nameservers: [`127.0.0.1:${d.ports.dns}`] })),
      cacheTtlSec: 1,
      negativeTtlSec: 1,
    },
    demo: { domain: '' },
    log: { level: 'info', pretty: 'false' },
  };
  for (const [k, v] of Object.entries(o.extra ?? {})) base[k] = { ...base[k], ...v };
  writeFileSync(m.config, stringify(base));
}

/** Starts `mailmesh -c <config> serve`; resolves once it logs that it is serving (no sleeps). Killed when the test ends. */
export async function startServe(t: Test, m: Member): Promise<void> {
  const child = spawn('node', [MAIN, '-c', m.config, 'serve'], { cwd: m.dir, env: { ...process.env, MAILMESH_LOG__PRETTY: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
  m.child = child;
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      m.log.push(line);
      if (line.includes('"mailmesh is serving"')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${m.domain}: serve exited ${code}: ${stderr}`)));
  });
}

/** A message of the test: a unique Message-ID, and a body that differs per message. */
export interface Sent {
  id: string;
  from: string;
  to: string;
  data: Buffer;
  /** Every reply the test got for it, in order (`lost: …` when the connection failed). */
  replies: string[];
}

export function makeMessage(n: number, from: string, to: string, phase: string): Sent {
  const id = `<m${n}.${randomBytes(6).toString('hex')}@${from.split('@')[1]}>`;
  const data = Buffer.from(
    [`From: ${from}`, `To: ${to}`, `Subject: lifecycle ${phase} #${n}`, `Message-ID: ${id}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
      `message ${n} in phase ${phase}`, randomBytes(24).toString('base64'), ''].join('\r\n'),
  );
  return { id, from, to, data, replies: [] };
}

/**
 * Sends messages as an MTA would: `concurrency` sessions per gateway, each message once until
 * it gets a final reply; a 4xx (or a dropped connection) is retried after `retryMs`, at most
 * `maxTries` times. Resolves when every message has its final reply.
 */
export async function sendAll(msgs: Sent[], gatewayOf: (m: Sent) => number, o: { concurrency: number; retryMs?: number; maxTries?: number }): Promise<void> {
  const queue = [...msgs];
  const retryMs = o.retryMs ?? 300;
  const maxTries = o.maxTries ?? 20;
  const worker = async () => {
    const mine = new Map<number, SmtpClient>();
    for (;;) {
      const m = queue.shift();
      if (!m) break;
      const port = gatewayOf(m);
      for (let tries = 1; ; tries++) {
        const reply = await transaction(mine, port, m);
        m.replies.push(reply);
        if (/^[25]/.test(reply) || tries >= maxTries) break;
        await new Promise((r) => setTimeout(r, retryMs)); // an MTA's retry interval, not a wait for readiness
      }
    }
    for (const c of mine.values()) await c.quit();
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
}

async function transaction(mine: Map<number, SmtpClient>, port: number, m: Sent): Promise<string> {
  let c = mine.get(port);
  try {
    if (!c || !c.usable) {
      c = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'mta.test', tls: 'none', timeouts: { connect: 5000, command: 30_000, dataEnd: 30_000 } });
      mine.set(port, c);
    }
    for (const [stage, step] of [
      ['MAIL', () => c!.mail(m.from)],
      ['RCPT', () => c!.rcpt(m.to)],
      ['DATA', () => c!.data(m.data)],
    ] as const) {
      const r = await step();
      if (r.code !== 250) {
        if (stage !== 'DATA') await c.rset();
        return `${r.code} ${stage} ${r.lines.join(' ')}`;
      }
    }
    return '250';
  } catch (e) {
    c?.close();
    mine.delete(port);
    return `lost: ${(e as Error).message}`;
  }
}

/** The header block of a message (up to the first empty line). */
export function headerOf(data: Buffer): string {
  const s = data.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  return end < 0 ? s : s.slice(0, end + 2);
}

/** The message without the trace fields a gateway puts on top (Received, Authentication-Results), RFC 5322 §3.6.7. */
export function withoutTrace(data: Buffer): Buffer {
  const lines = data.toString('latin1').split('\r\n');
  let i = 0;
  while (i < lines.length && /^(Received|Authentication-Results):/i.test(lines[i]!)) {
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i]!)) i++;
  }
  return Buffer.from(lines.slice(i).join('\r\n'), 'latin1');
}
