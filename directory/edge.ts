import net, { type Socket } from 'node:net';
import { MailmeshError } from './errors.js';
import type { Counter, Metrics } from './metrics.js';

/**
 * What every network face (LDAP, HTTP, SMTP) does against hostile peers (docs/security/edges.md):
 * a bound on what it queues for a peer that does not read, limits on connections in total and
 * per client address, a total lifetime per connection, and faults that end one connection alone,
 * logged and counted as `mailmesh_faults_total{face}`.
 */
export type Face = 'ldap' | 'http' | 'smtp';

export interface EdgeLimits {
  /** A connection whose unsent replies pass this many bytes is not read until they drain. */
  maxPendingBytes: number;
  /** A connection whose unsent bytes make no progress for this long is closed. */
  drainTimeoutMs: number;
  /** Open connections of the face at most. */
  maxConnections: number;
  /** Open connections of one client address at most (0: no per-address limit). */
  maxConnectionsPerAddress: number;
  /** A connection is closed this long after it was accepted, whatever it does (0: no limit). */
  maxLifetimeMs: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxPendingBytes: 4 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  maxConnections: 1000,
  maxConnectionsPerAddress: 50,
  maxLifetimeMs: 3_600_000,
};

/** The configuration keys of a face (cli/config.ts `edgeKeys`), in seconds. */
export interface EdgeSettings {
  /** Absent where the protocol library bounds it itself (SMTP). */
  maxPendingBytes?: number;
  drainTimeoutSec: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxLifetimeSec: number;
}

export function edgeLimits(s: EdgeSettings): EdgeLimits {
  return {
    maxPendingBytes: s.maxPendingBytes ?? DEFAULT_EDGE_LIMITS.maxPendingBytes,
    drainTimeoutMs: s.drainTimeoutSec * 1000,
    maxConnections: s.maxConnections,
    maxConnectionsPerAddress: s.maxConnectionsPerAddress,
    maxLifetimeMs: s.maxLifetimeSec * 1000,
  };
}

interface EdgeLogger {
  warn(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** A peer that hung up or vanished: counted, logged at debug (it is routine on the Internet). */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);

/** An address as one client: IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is the IPv4 address. */
export function clientAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** A predicate over client addresses from a list of addresses and CIDR blocks (RFC 4632 §3.1, RFC 4291 §2.3). */
export function ipMatcher(cidrs: readonly string[]): (address: string) => boolean {
  const list = new net.BlockList();
  for (const entry of cidrs) {
    const [addr, bits, extra] = entry.trim().split('/');
    const family = net.isIP(addr ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (!family || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new MailmeshError('CONFIG_INVALID', `not an address or CIDR block: ${JSON.stringify(entry)}`);
    }
    list.addSubnet(addr!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return (address) => {
    const a = clientAddress(address);
    const family = net.isIP(a);
    return family !== 0 && list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}

export type Refusal = 'total' | 'address';

const STALLED = Symbol('stalled');

export class EdgeGuard {
  readonly limits: EdgeLimits;
  readonly #perAddress = new Map<string, number>();
  #open = 0;
  /** Uncounts an admitted socket (admit), once. */
  readonly #releases = new WeakMap<Socket, () => void>();
  readonly #faults: Counter | undefined;
  readonly #log: EdgeLogger | undefined;
  /** Addresses exempt from the per-address limit (trusted reverse proxies). */
  readonly #exempt: (address: string) => boolean;

  constructor(
    readonly face: Face,
    limits: Partial<EdgeLimits> = {},
    opts: { metrics?: Metrics; logger?: EdgeLogger; exempt?: (address: string) => boolean } = {},
  ) {
    this.limits = { ...DEFAULT_EDGE_LIMITS, ...limits };
    this.#faults = opts.metrics?.faults();
    this.#log = opts.logger;
    this.#exempt = opts.exempt ?? (() => false);
  }

  /** Open connections now (all addresses). */
  get open(): number {
    return this.#open;
  }

  /**
   * Counts a newly accepted connection, or says why it is refused (the caller answers as its
   * protocol says and closes it). An admitted socket gets an 'error' listener (a fault of its
   * own connection), its lifetime deadline, and is uncounted when it closes.
   */
  admit(socket: Socket): Refusal | undefined {
    const address = clientAddress(socket.remoteAddress);
    socket.on('error', (err) => this.fault(err, { remote: address, where: 'socket' }));
    if (this.#open >= this.limits.maxConnections) return 'total';
    const mine = this.#perAddress.get(address) ?? 0;
    if (this.limits.maxConnectionsPerAddress > 0 && mine >= this.limits.maxConnectionsPerAddress && !this.#exempt(address)) return 'address';
    this.#open++;
    this.#perAddress.set(address, mine + 1);
    const lifetime = this.limits.maxLifetimeMs > 0 ? setTimeout(() => socket.destroy(), this.limits.maxLifetimeMs).unref() : undefined;
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      clearTimeout(lifetime);
      this.#open--;
      const n = (this.#perAddress.get(address) ?? 1) - 1;
      if (n > 0) this.#perAddress.set(address, n);
      else this.#perAddress.delete(address);
    };
    socket.once('close', release);
    this.#releases.set(socket, release);
    return undefined;
  }

  /**
   * Uncounts an admitted connection now; once only, whichever comes first, this or the socket's
   * 'close'. For a protocol library that takes the accepted socket's listeners away: smtp-server's
   * STARTTLS calls removeAllListeners() on it before it wraps it in TLS, so its 'close' would never
   * reach us and every STARTTLS session would stay counted (gateway/smtp/listener.ts).
   */
  release(socket: Socket): void {
    this.#releases.get(socket)?.();
  }

  /** True when the socket holds more unsent bytes than maxPendingBytes. */
  overPending(socket: Socket): boolean {
    return socket.writableLength > this.limits.maxPendingBytes;
  }

  /**
   * Stops reading a socket that holds too much unsent data: `resume` runs once it drained.
   * A socket whose peer reads nothing for drainTimeoutMs is destroyed (`stall`). Returns false
   * (and does nothing) when the socket is under the bound.
   */
  hold(socket: Socket, resume: () => void): boolean {
    if (!this.overPending(socket) || socket.destroyed) return false;
    socket.pause();
    this.stall(socket, () => {
      socket.resume();
      resume();
    });
    return true;
  }

  /**
   * A socket whose replies wait for the peer to read (the protocol library, or `hold`, stopped
   * reading it): destroyed when none of its unsent bytes reach the kernel for drainTimeoutMs (a
   * slow reader that makes progress keeps its connection); `drained` runs once nothing waits.
   * Once per socket at a time.
   */
  stall(socket: Socket, drained: () => void = () => {}): void {
    const s = socket as Socket & { [STALLED]?: boolean };
    if (s[STALLED] || socket.destroyed) return;
    s[STALLED] = true;
    // socket.bytesWritten counts what is still buffered too; what reached the kernel is the rest.
    const flushed = () => socket.bytesWritten - socket.writableLength;
    let mark = flushed();
    let timer: NodeJS.Timeout;
    const end = () => {
      s[STALLED] = false;
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', end);
    };
    const onDrain = () => {
      end();
      if (!socket.destroyed) drained();
    };
    const check = () => {
      if (socket.writableLength === 0) return onDrain();
      if (flushed() === mark) {
        end();
        return void socket.destroy();
      }
      mark = flushed();
      timer = setTimeout(check, this.limits.drainTimeoutMs).unref();
    };
    timer = setTimeout(check, this.limits.drainTimeoutMs).unref();
    socket.on('drain', onDrain);
    socket.on('close', end);
  }

  /** A fault contained by this face: logged and counted; the caller ends the request or connection. */
  fault(err: unknown, context: object = {}): void {
    this.#faults?.inc({ face: this.face });
    const e = err as { message?: string; code?: string } | undefined;
    const entry = { ...context, face: this.face, err: e?.message ?? String(err), code: e?.code };
    if (e?.code && PEER_GONE.has(e.code)) this.#log?.debug?.(entry, 'fault contained');
    else this.#log?.warn(entry, 'fault contained');
  }
}
