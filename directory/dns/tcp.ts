import type net from 'node:net';
import { HEADER_SIZE } from '../dnswire.js';
import { DEFAULT_EDGE_LIMITS, type EdgeLimits } from '../edge.js';

/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766) against peers that do not play fair: what is queued
 * for a peer is bounded, connections are limited per client and in total, and idle, stalled
 * and long-lived connections are closed.
 */

/**
 * The edge limits of every face (directory/edge.ts EdgeLimits: backlog per connection, drain
 * timeout, connections in total and per address, lifetime), and two of DNS over TCP's own.
 */
export interface TcpLimits extends EdgeLimits {
  /** Unsent octets of all connections together; past it, a connection that has to wait for its peer is not read either. */
  maxTotalPendingBytes: number;
  /** Closed after this long without a query or an answer (RFC 7766 §6.2.3). */
  idleTimeoutMs: number;
}

export const TCP_DEFAULTS: TcpLimits = {
  ...DEFAULT_EDGE_LIMITS,
  maxTotalPendingBytes: 64 * 1024 * 1024,
  idleTimeoutMs: 10_000,
  maxLifetimeMs: 300_000,
  maxConnectionsPerAddress: 10,
};

/** Why a connection was refused or closed by us, for the metrics. */
export type TcpEvent = 'per_client' | 'total' | 'idle' | 'drain' | 'lifetime' | 'short_frame';

export interface TcpHooks {
  /** The answers to one framed message, produced lazily (an AXFR is many messages). */
  respond(msg: Buffer, address: string): Iterable<Buffer>;
  fault(err: unknown, context: object): void;
  event(kind: TcpEvent): void;
}

/** The connections of one DNS server. */
export class TcpConnections {
  readonly limits: TcpLimits;
  readonly #open = new Set<net.Socket>();
  readonly #perClient = new Map<string, number>();
  /** Octets written to all sockets and not yet handed to the kernel. */
  pending = 0;

  constructor(limits: Partial<TcpLimits>, readonly hooks: TcpHooks) {
    this.limits = { ...TCP_DEFAULTS, ...limits };
  }

  get size(): number {
    return this.#open.size;
  }

  accept(socket: net.Socket): void {
    // Every socket has its 'error' listener before anything else can fail (a reset while refused, too).
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') this.hooks.fault(err, { remote: socket.remoteAddress, where: 'tcp socket' });
    });
    const address = socket.remoteAddress ?? '';
    const mine = this.#perClient.get(address) ?? 0;
    const refused: TcpEvent | undefined = this.#open.size >= this.limits.maxConnections ? 'total' : mine >= this.limits.maxConnectionsPerAddress ? 'per_client' : undefined;
    if (refused) {
      this.hooks.event(refused);
      return void socket.destroy();
    }
    this.#open.add(socket);
    this.#perClient.set(address, mine + 1);
    socket.once('close', () => {
      this.#open.delete(socket);
      const n = (this.#perClient.get(address) ?? 1) - 1;
      if (n > 0) this.#perClient.set(address, n);
      else this.#perClient.delete(address);
    });
    new Connection(this, socket, address);
  }

  closeAll(): void {
    for (const s of this.#open) s.destroy();
  }
}

class Connection {
  #input: Buffer = Buffer.alloc(0);
  #output?: Iterator<Buffer>;
  /** Octets written and not yet handed to the kernel (their write callback has not run). */
  #queued = 0;
  #closed = false;
  #blocked = false;

  constructor(
    private readonly face: TcpConnections,
    private readonly socket: net.Socket,
    private readonly address: string,
  ) {
    const { limits } = face;
    socket.setNoDelay(true);
    socket.setTimeout(limits.idleTimeoutMs, () => this.#close('idle'));
    const lifetime = setTimeout(() => this.#close('lifetime'), limits.maxLifetimeMs).unref();
    socket.once('close', () => {
      clearTimeout(lifetime);
      this.#closed = true;
      face.pending -= this.#queued;
      this.#queued = 0;
      this.#output = undefined;
    });
    socket.on('data', (chunk: Buffer) => this.#pump(chunk));
  }

  #close(why: TcpEvent): void {
    if (this.#closed) return;
    this.face.hooks.event(why);
    this.socket.destroy();
  }

  /** Answers what has arrived, in order, until the input is used up or the peer has to catch up first. */
  #pump(chunk?: Buffer): void {
    try {
      if (chunk) this.#input = this.#input.length ? Buffer.concat([this.#input, chunk]) : chunk;
      if (this.#blocked || this.#closed) return;
      for (;;) {
        if (this.#output) {
          const next = this.#output.next();
          if (next.done) this.#output = undefined;
          else if (this.#write(next.value)) return this.#block();
          continue;
        }
        // RFC 1035 §4.2.2: a two-octet length, then the message.
        if (this.#input.length < 2) return;
        const len = this.#input.readUInt16BE(0);
        if (this.#input.length < 2 + len) return;
        const msg = this.#input.subarray(2, 2 + len);
        this.#input = this.#input.subarray(2 + len);
        if (len < HEADER_SIZE) return this.#close('short_frame');
        this.#output = this.face.hooks.respond(msg, this.address)[Symbol.iterator]();
      }
    } catch (err) {
      // A fault in one connection ends that connection alone.
      this.face.hooks.fault(err, { remote: this.address, where: 'tcp answer' });
      this.socket.destroy();
    }
  }

  /** Writes one framed message; true when the peer must drain before we go on. */
  #write(out: Buffer): boolean {
    const n = 2 + out.length;
    this.#queued += n;
    this.face.pending += n;
    // The length prefix and the message go out in one writev (no copy of the message).
    this.socket.cork();
    this.socket.write(Buffer.from([out.length >> 8, out.length & 0xff]));
    this.socket.write(out, () => {
      if (this.#closed) return;
      this.#queued -= n;
      this.face.pending -= n;
    });
    this.socket.uncork();
    const { maxPendingBytes, maxTotalPendingBytes } = this.face.limits;
    // 'drain' comes only after a write that returned false (writableNeedDrain): wait only for that.
    return this.socket.writableNeedDrain && (this.socket.writableLength > maxPendingBytes || this.face.pending > maxTotalPendingBytes);
  }

  /** Stops reading until the socket drains; closes it if that takes longer than drainTimeoutMs. */
  #block(): void {
    const { socket } = this;
    this.#blocked = true;
    socket.pause();
    socket.setTimeout(0); // the drain timeout governs while blocked
    const timer = setTimeout(() => this.#close('drain'), this.face.limits.drainTimeoutMs).unref();
    const off = () => {
      clearTimeout(timer);
      socket.off('drain', drained);
      socket.off('close', off);
    };
    const drained = () => {
      off();
      this.#blocked = false;
      socket.setTimeout(this.face.limits.idleTimeoutMs);
      socket.resume();
      this.#pump();
    };
    socket.on('drain', drained);
    socket.on('close', off);
  }
}
