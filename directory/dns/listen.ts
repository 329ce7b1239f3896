import dgram from 'node:dgram';
import net from 'node:net';
import type { Metrics } from '../metrics.js';
import { ResponseRateLimiter, type RrlOptions } from './rrl.js';
import { TcpConnections, type TcpLimits } from './tcp.js';
import { FLAG, HEADER_SIZE, readName } from '../dnswire.js';

/**
 * The sockets of the DNS face: UDP and TCP on one port. Every socket callback is owned here:
 * what goes wrong with one datagram or connection is a fault of that request alone
 * (`fault`, counted as mailmesh_faults_total{face="dns"}), never of the process.
 */

export interface ListenHooks {
  respond(msg: Buffer, client: { transport: 'udp' | 'tcp'; address: string }): Iterable<Buffer>;
  fault(err: unknown, context: object): void;
  metrics: Metrics;
  tcp: Partial<TcpLimits>;
  rrl: Partial<RrlOptions>;
  /** Milliseconds, for the RRL buckets. */
  now(): number;
}

export interface Listening {
  port: number;
  close(): Promise<void>;
}

/**
 * RFC 2181 §9 / RFC 7766 §5: the slip answer of RRL: header and question of the answer, TC set,
 * no records, so that a real client retries over TCP.
 */
export function truncated(answer: Buffer): Buffer {
  const qd = answer.readUInt16BE(4);
  const end = qd === 1 ? readName(answer, HEADER_SIZE).end + 4 : HEADER_SIZE;
  const out = Buffer.from(answer.subarray(0, end));
  out.writeUInt16BE(out.readUInt16BE(2) | FLAG.TC, 2);
  out.fill(0, 6, HEADER_SIZE); // no answer, authority or additional records (and so no OPT or TSIG)
  return out;
}

function udpSocket(host: string, hooks: ListenHooks, rrl: ResponseRateLimiter, limited: (action: string) => void): dgram.Socket {
  const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  udp.on('message', (msg, rinfo) => {
    try {
      // RFC 768: one datagram, at most one answer; a datagram from port 0 cannot be answered (send throws: a fault).
      for (const out of hooks.respond(msg, { transport: 'udp', address: rinfo.address })) {
        const action = rrl.check(rinfo.address);
        if (action !== 'send') limited(action);
        if (action === 'drop') continue;
        udp.send(action === 'slip' ? truncated(out) : out, rinfo.port, rinfo.address, (err) => {
          if (err) hooks.fault(err, { remote: rinfo.address, where: 'udp send' });
        });
      }
    } catch (err) {
      hooks.fault(err, { remote: rinfo.address, port: rinfo.port, where: 'udp' });
    }
  });
  return udp;
}

/**
 * Listens on UDP and TCP on the same port. With port 0, UDP picks the port and TCP takes the
 * same one; if that is taken for TCP, both try again.
 */
export async function listenDns(host: string, port: number, hooks: ListenHooks): Promise<Listening> {
  const rrl = new ResponseRateLimiter(hooks.rrl, hooks.now);
  const rrlCounter = hooks.metrics.counter('mailmesh_dns_rrl_total', 'UDP responses held back by response-rate limiting, by action (drop, slip)', ['action']);
  const tcpCounter = hooks.metrics.counter('mailmesh_dns_tcp_limits_total', 'TCP connections refused or closed by a limit, by limit', ['limit']);
  const connections = new TcpConnections(hooks.tcp, {
    respond: (msg, address) => hooks.respond(msg, { transport: 'tcp', address }),
    fault: hooks.fault,
    event: (limit) => tcpCounter.inc({ limit }),
  });
  hooks.metrics.collect('mailmesh_dns_tcp_connections', 'Open DNS TCP connections', 'gauge', () => [{ value: connections.size }]);
  hooks.metrics.collect('mailmesh_dns_tcp_pending_bytes', 'Octets queued for DNS TCP clients, not yet sent', 'gauge', () => [{ value: connections.pending }]);
  for (let attempt = 0; ; attempt++) {
    const udp = udpSocket(host, hooks, rrl, (action) => rrlCounter.inc({ action }));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => hooks.fault(err, { where: 'udp socket' }));
    const actual = udp.address().port;
    const tcp = net.createServer((s) => {
      try {
        connections.accept(s);
      } catch (err) {
        hooks.fault(err, { remote: s.remoteAddress, where: 'tcp accept' });
        s.destroy();
      }
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(actual, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      if (port === 0 && (e as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 20) continue;
      throw e;
    }
    tcp.on('error', (err) => hooks.fault(err, { where: 'tcp server' }));
    return {
      port: actual,
      async close() {
        connections.closeAll();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
      },
    };
  }
}
