import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection';
import type { EdgeGuard } from '../../directory/edge.js';
import { replyText } from './client.js';
import { smtpReply } from './replies.js';

/**
 * The one file that knows smtp-server's internals (docs/smtp.md "Upstream side"). A queue-less
 * relay needs five things smtp-server 3 has no public hook for, so each is an override of a
 * member of its SMTPConnection (declared in its types, but not part of its documented API):
 *
 * - `_resetSession()`: the upstream transaction ends by RSET, HELO/EHLO, STARTTLS or the end of
 *   DATA, and the next hop's transaction must end with it (RSET there). smtp-server has hooks
 *   for MAIL, RCPT, DATA and close, none for a reset; this is the one place all resets pass.
 * - `_setListeners()` + `connectionReady()`: the greeting without smtp-server's hard-coded
 *   100 ms early-talker delay (`init()` has no option for it); `initNow()` runs init()'s steps.
 * - `_createParser()`: an over-long command line gets `500 5.5.2` (RFC 5321 §4.5.3.1.4)
 *   instead of smtp-server's `421 Error: <message>`.
 * - `_socket` in `send()`: the current socket (the TLS one after STARTTLS), whose unread
 *   replies make a stalled reader (EdgeGuard.stall).
 * - `_onClose()`: the end of the connection, TLS or not. The EdgeGuard counts an accepted socket
 *   until its 'close', but smtp-server's STARTTLS removes every listener of that socket before
 *   wrapping it (removeAllListeners), so the count is released here (EdgeGuard.release).
 * - `close()` drains (docs/operations.md "Signals"): smtp-server's close() stops accepting,
 *   answers every further command 421 and gives every session `closeTimeout` before it cuts it
 *   off; we end at once (421, RFC 5321 §3.8) every session that is not in DATA (`_dataStream`),
 *   and one in DATA at its reset, right after the reply to its message.
 *
 * test/gateway/smtp/listener.test.ts pins each of them, so an smtp-server release that changes
 * them fails there, not on the wire.
 */

/** RFC 3463 §2: class.subject.detail at the start of a reply text. */
const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(\s|$)/;

/**
 * smtp-server's connection with one change to its replies: smtp-server puts an enhanced
 * status code (RFC 2034) in front of every reply from a table keyed by the reply code
 * alone, so a next hop's "550 5.7.1 …" would go out as "550 5.1.1 5.7.1 …". A text that
 * already starts with an enhanced code is sent as it is.
 */
class Connection extends SMTPConnection {
  readonly #listener: Listener;
  /** The accepted socket, as the EdgeGuard counted it (after STARTTLS `_socket` is the TLS one). */
  readonly #accepted: net.Socket;

  constructor(listener: Listener, socket: net.Socket | tls.TLSSocket, options?: SMTPConnectionOptions | null) {
    super(listener, socket, options);
    this.#listener = listener;
    this.#accepted = socket;
  }

  /** The connection ended (smtp-server calls this for the plain and the TLS socket alike): uncounted. */
  override _onClose(): void {
    super._onClose();
    this.#listener.guard?.release(this.#accepted);
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    const text = Array.isArray(data) ? data[0] : data;
    super.send(code, data, typeof text === 'string' && ENHANCED_CODE.test(text) ? false : context);
    // smtp-server reads no further command while replies wait to be sent (its _whenWritable);
    // a client that never reads them is closed after drainTimeoutMs (docs/security/edges.md).
    const guard = this.#listener.guard;
    if (guard && this._socket.writableNeedDrain) guard.stall(this._socket);
  }

  /**
   * RFC 5321 §4.5.3.1.4: a command line longer than the limit gets 500 5.5.2 (§4.2.2 "line too
   * long"), and the session ends: smtp-server's parser stops at the line and cannot resume.
   */
  override _createParser(): ReturnType<SMTPConnection['_createParser']> {
    const parser = super._createParser();
    parser.removeAllListeners('error');
    parser.on('error', (err: Error) => {
      // smtp-server's parser has no other error today; another one ends the session with 421, its text logged.
      const tooLong = /too long/i.test(err.message);
      if (!tooLong) this.#listener.emit('error', err);
      this.send(tooLong ? 500 : 421, replyText(smtpReply(tooLong ? 'COMMAND_TOO_LONG' : 'INTERNAL')), false);
      this.close();
    });
    return parser;
  }

  /** Every upstream reset (RSET, HELO/EHLO, STARTTLS, after DATA; also once before onConnect) reaches onReset. */
  override _resetSession(): void {
    super._resetSession();
    this.#listener.onReset?.(this.session);
    // Draining: the transaction is over; its reply (sent right after the reset) goes first.
    if (this.#listener.draining) setImmediate(() => this.shutDown());
  }

  /** 421 and close, unless the session is in DATA (its message gets its reply first) and `now` is not set. */
  shutDown(now = false): void {
    if (this._closing || this._closed || (!now && this._dataStream)) return;
    // smtp-server's own shutdown reply (its close() after closeTimeout).
    this.send(421, `${this.name} Server shutting down`, false);
    this.close();
  }

  /**
   * init() without the greeting delay: smtp-server waits a hard-coded 100 ms before the
   * greeting to catch clients that talk before it ("early talkers", a spam-bot trait). We
   * run the same steps at once: listeners, the maxClients check, then the greeting.
   */
  initNow(): void {
    this._setListeners(() => {
      const max = this.#listener.options.maxClients;
      if (max && this.#listener.connections.size > max) {
        // smtp-server's own reply, as init() sends it.
        this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      this.connectionReady();
    });
  }
}

export interface ListenerOptions extends SMTPServerOptions {
  /** Keep smtp-server's 100 ms early-talker hold before the greeting (default: greet at once). */
  earlyTalkerCheck?: boolean;
  /** Connections per address and in total, lifetime, the drain timeout (directory/edge.ts). */
  guard?: EdgeGuard;
  /** The session's transaction was reset: RSET, HELO/EHLO, STARTTLS, the end of DATA (smtp-server has no hook for it). */
  onReset?(session: SMTPServerSession): void;
}

/**
 * The SMTP listener: smtp-server with TCP_NODELAY on every accepted socket (Nagle plus
 * delayed ACKs cost ~40 ms a reply on loopback, docs/architecture.md "Library notes"), enhanced codes
 * passed through unchanged, and, unless `earlyTalkerCheck`, no 100 ms greeting delay.
 */
export class Listener extends SMTPServer {
  private readonly earlyTalkerCheck: boolean;
  readonly guard: EdgeGuard | undefined;
  readonly onReset: ((session: SMTPServerSession) => void) | undefined;
  /** close() was called: no new connections, each session ends after its transaction. */
  draining = false;

  constructor(options: ListenerOptions) {
    const { earlyTalkerCheck, guard, onReset, ...rest } = options;
    super({ ...rest, noDelay: true });
    this.earlyTalkerCheck = earlyTalkerCheck ?? false;
    this.guard = guard;
    this.onReset = onReset;
  }

  // Same steps as SMTPServer.connect(), with our Connection and its greeting policy.
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    socket.setNoDelay(true);
    const refused = this.guard?.admit(socket);
    if (refused) {
      // RFC 5321 §3.8, §4.3.2: 421 at the greeting, then close.
      const r = smtpReply('TOO_MANY_CONNECTIONS', { name: this.options.name ?? 'mailmesh', scope: refused === 'address' ? ' from your address' : '' });
      socket.end(`${r.code} ${replyText(r)}\r\n`);
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    const connection = new Connection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this.emit('error', err));
    connection.on('connect', (info: unknown) => this.emit('connect', info));
    if (this.earlyTalkerCheck) connection.init();
    else connection.initNow();
  }

  /**
   * Drains: stops accepting, closes every session with 421 now but those in DATA, which close
   * after the reply to their message; those still open after `options.closeTimeout` get
   * smtp-server's 421. `callback` runs once every connection is closed.
   */
  override close(callback?: (() => void) | null): void {
    this.draining = true;
    super.close(callback);
    for (const c of [...this.connections]) if (c instanceof Connection) c.shutDown();
  }
}
