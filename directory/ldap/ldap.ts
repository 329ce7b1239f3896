import type { AddressInfo, Socket } from 'node:net';
import ldap from 'ldapjs';
import type { Logger } from 'pino';
import type { Directory } from '../directory.js';
import { EdgeGuard, type EdgeLimits } from '../edge.js';
import type { Metrics } from '../metrics.js';
import { followFromStart, type Follower } from '../follow.js';
import { checkMessage, encodeResult, takeMessages } from './ber.js';
import { buildEntries, checkBase, dnKey, type LdapEntry } from './entries.js';
import { attributeType, compileFilter, type FilterNode } from './filter.js';
import { renderLdif } from './ldif.js';

export { renderSchemaFile, renderSchemaLdif } from './schema.js';

/**
 * The directory's read-only LDAP face (docs/architecture.md "Publication"): anonymous searches over one
 * entry per member domain (entries.ts), served from an in-memory snapshot that is rebuilt on
 * the Directory's 'change' events. ldapjs 3.0.7 is decommissioned upstream, so we use only its
 * BER codec and dispatch, and select attributes and evaluate filters ourselves.
 */
export interface LdapServerOptions {
  directory: Directory;
  /** Base DN (default dc=mailmesh); must start with dc=, o= or ou=. */
  base?: string;
  /** Most entries one search returns (default 100); a client may ask for fewer (RFC 4511 §4.5.1.4). */
  sizeLimit?: number;
  /** Most seconds one search may take (default 10); a client may ask for less (RFC 4511 §4.5.1.5). */
  timeLimitSec?: number;
  logger?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Where faults are counted (mailmesh_faults_total{face="ldap"}). */
  metrics?: Metrics;
  /** Milliseconds clock for the time limit (tests inject one). */
  now?: () => number;
  /** Idle connections are closed after this (default 120 s). */
  idleTimeoutMs?: number;
  /** A request larger than this ends the session with protocolError (default 256 KiB). */
  maxRequestBytes?: number;
  /** Connections, unsent replies and lifetime (directory/edge.ts; defaults there). */
  limits?: Partial<EdgeLimits>;
}

// RFC 4511 §4.1.9 result codes.
export const RESULT = {
  success: 0,
  protocolError: 2,
  timeLimitExceeded: 3,
  sizeLimitExceeded: 4,
  authMethodNotSupported: 7,
  noSuchObject: 32,
  invalidCredentials: 49,
  unavailable: 52,
  unwillingToPerform: 53,
  other: 80,
} as const;
const RESULT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RESULT).map(([name, code]) => [code, name]));
/** Label values of mailmesh_ldap_operations_total for the requests answered without ldapjs. */
const REFUSED_NAMES = new Map([[0x66, 'modify'], [0x68, 'add'], [0x4a, 'delete'], [0x6c, 'modifyDN'], [0x6e, 'compare']]);

// RFC 4511 §4.5.1.2 scopes.
const SCOPE = { base: 0, one: 1, sub: 2 } as const;
/** RFC 4511 §4.4.1: the Notice of Disconnection's responseName. */
const NOTICE_OF_DISCONNECTION = '1.3.6.1.4.1.1466.20036';
/** RFC 4511 §4.2, §4.3, §4.5.1, §4.11: the requests ldapjs parses and dispatches for us (bind, unbind, search, abandon). */
const LDAPJS_OPS = new Set([0x60, 0x42, 0x63, 0x50]);
/** RFC 4511 §4.6–§4.10: write requests (and compare) → the tag of their response; we answer them without parsing. */
const REFUSED_OPS = new Map([[0x66, 0x67], [0x68, 0x69], [0x4a, 0x6b], [0x6c, 0x6d], [0x6e, 0x6f]]);
/** RFC 4511 §4.12: ExtendedRequest and ExtendedResponse. */
const EXTENDED_REQUEST = 0x77;
const EXTENDED_RESPONSE = 0x78;

/** What we use of ldapjs 3's request and response objects (its bundled types describe v2). */
interface Req {
  dn: { toString(): string };
  scope: number;
  filter: FilterNode;
  attributes: string[];
  sizeLimit: number;
  timeLimit: number;
  typesOnly: boolean;
  credentials?: string;
}
interface Res {
  diagnosticMessage: string;
  matchedDN: string;
  end(status?: number): void;
  send(entry: unknown): void;
  createSearchEntry(o: { objectName: string; attributes: unknown[] }): unknown;
}
type Next = () => void;
interface LdapjsServer {
  server: import('node:net').Server;
  newConnection(socket: Socket): void;
  on(event: string, f: (...args: unknown[]) => void): void;
  listen(port: number, host: string, cb: () => void): void;
  search(name: string, h: (req: Req, res: Res, next: Next) => void): void;
  bind(name: string, h: (req: Req, res: Res, next: Next) => void): void;
}
type ConnectionWithParser = Socket & { parser: { write(b: Buffer): void } & NodeJS.EventEmitter };

/** `mailmesh ldap export`: every published entry as LDIF (RFC 2849) for slapadd or ldapadd, base entry first. */
export async function exportLdif(directory: Directory, base = 'dc=mailmesh'): Promise<string> {
  const entries = buildEntries(await directory.listDomains(), base);
  return renderLdif(entries, `mailmesh LDAP export: ${entries.length} entries under ${checkBase(base)}, store serial ${await directory.serial()}\n` +
    'needs the core, cosine, inetorgperson and mailmesh schemas (mailmesh ldap schema)');
}

/** RFC 4511 §4.5.1.8: which of an entry's attributes a search asked for. */
function selectAttributes(entry: LdapEntry, requested: string[]): LdapEntry['attributes'] {
  // ldapjs 3.0.7 hands the names over as sent; compare lower-cased (docs/architecture.md "Library notes").
  const want = requested.map((a) => a.toLowerCase());
  if (want.length === 0 || want.includes('*')) return entry.attributes;
  // RFC 4511 §4.5.1.8: a description names the type with its options, or the bare type asks for all of them.
  return entry.attributes.filter((a) => want.includes(a.type.toLowerCase()) || want.includes(attributeType(a.type)));
}

export class LdapServer {
  readonly #opts: Required<Omit<LdapServerOptions, 'logger' | 'metrics' | 'limits'>> & Pick<LdapServerOptions, 'logger'>;
  readonly #guard: EdgeGuard;
  readonly #count: (operation: string, status: number) => void;
  readonly #srv: LdapjsServer;
  readonly #sockets = new Set<Socket>();
  readonly #base: string;
  #entries: LdapEntry[] = [];
  #byKey = new Map<string, LdapEntry>();
  #rootDse: LdapEntry;
  #follow?: Follower;

  private constructor(opts: LdapServerOptions) {
    this.#base = checkBase(opts.base ?? 'dc=mailmesh');
    this.#opts = {
      base: this.#base,
      sizeLimit: opts.sizeLimit ?? 100,
      timeLimitSec: opts.timeLimitSec ?? 10,
      now: opts.now ?? Date.now,
      idleTimeoutMs: opts.idleTimeoutMs ?? 120_000,
      maxRequestBytes: opts.maxRequestBytes ?? 256 * 1024,
      directory: opts.directory,
      logger: opts.logger,
    };
    // RFC 4512 §5.1: the root DSE names what this server holds.
    this.#rootDse = {
      dn: '',
      key: '',
      parentKey: '',
      attributes: [
        { type: 'objectClass', values: ['top'] },
        { type: 'namingContexts', values: [this.#base] },
        { type: 'supportedLDAPVersion', values: ['3'] },
      ],
    };
    const srv = ldap.createServer({ connectionRouter: (socket: Socket) => this.#connection(socket) } as never) as unknown as LdapjsServer;
    this.#srv = srv;
    this.#guard = new EdgeGuard('ldap', opts.limits, { metrics: opts.metrics, logger: opts.logger });
    const ops = opts.metrics?.counter('mailmesh_ldap_operations_total', 'Operations answered, by operation and RFC 4511 result code', ['operation', 'result']);
    this.#count = (operation, status) => ops?.inc({ operation, result: RESULT_NAMES[status] ?? 'other' });
    srv.on('error', (err) => this.#opts.logger?.debug({ err }, 'ldap: protocol error'));
    srv.on('clientError', (err) => this.#opts.logger?.debug({ err }, 'ldap: client error'));
    srv.search('', (req, res, next) => this.#contained('search', res, next, () => this.#search(req, res, next)));
    srv.bind('', (req, res, next) => this.#contained('bind', res, next, () => this.#bind(req, res, next)));
  }

  /** Builds the first snapshot and follows the directory's 'change' events from before it on. */
  static async create(opts: LdapServerOptions): Promise<LdapServer> {
    const s = new LdapServer(opts);
    s.#follow = await followFromStart(opts.directory, () => s.#rebuild(), (err) =>
      opts.logger?.error({ err }, 'ldap: rebuilding the entries failed; serving the previous ones'));
    return s;
  }

  get base(): string {
    return this.#base;
  }

  /** The entries being served, base first. */
  get entries(): readonly LdapEntry[] {
    return this.#entries;
  }

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#srv.server.once('error', reject);
      this.#srv.listen(port, host, () => {
        this.#srv.server.off('error', reject);
        resolve(this.address());
      });
    });
  }

  address(): AddressInfo {
    return this.#srv.server.address() as AddressInfo;
  }

  /** Resolves when every change seen so far is in the served snapshot. */
  async settled(): Promise<void> {
    await this.#follow?.settled();
  }

  async close(): Promise<void> {
    this.#follow?.stop();
    for (const s of this.#sockets) s.destroy();
    if (this.#srv.server.listening) await new Promise<void>((r) => this.#srv.server.close(() => r()));
    await this.settled();
  }

  async #rebuild(): Promise<void> {
    const entries = buildEntries(await this.#opts.directory.listDomains(), this.#base);
    this.#entries = entries;
    this.#byKey = new Map(entries.map((e) => [e.key, e]));
  }

  /**
   * Takes over ldapjs's socket reading: we frame the messages (ber.ts), refuse what is not
   * well-formed or too large, answer writes and extended operations ourselves, and hand ldapjs
   * one bind, unbind, search or abandon at a time; nothing it throws escapes. A client that
   * does not read its results is not read either once they pass limits.maxPendingBytes
   * (docs/security/edges.md).
   */
  #connection(socket: Socket): void {
    const refused = this.#guard.admit(socket);
    if (refused) {
      // RFC 4511 §4.4.1: the Notice of Disconnection says why (unavailable), then the connection ends.
      this.#opts.logger?.debug({ remote: socket.remoteAddress, refused }, 'ldap: too many connections');
      socket.end(encodeResult(0, EXTENDED_RESPONSE, RESULT.unavailable, `too many connections (${refused})`, NOTICE_OF_DISCONNECTION));
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.setNoDelay(true);
    socket.setTimeout(this.#opts.idleTimeoutMs);
    this.#srv.newConnection(socket);
    const { parser } = socket as ConnectionWithParser;
    socket.removeAllListeners('data');
    parser.removeAllListeners('error');
    parser.on('error', (err: Error) => this.#disconnect(socket, err.message));
    let pending = Buffer.alloc(0);
    const queue: Buffer[] = [];
    let held = false;
    const pump = (): void => {
      held = false;
      while (queue.length > 0) {
        if (socket.destroyed || socket.writableEnded) return;
        if ((held = this.#guard.hold(socket, pump))) return;
        this.#handle(socket, parser, queue.shift()!);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        const taken = takeMessages(pending.length ? Buffer.concat([pending, chunk]) : chunk, this.#opts.maxRequestBytes);
        if (taken === 'invalid') return this.#disconnect(socket, 'not an LDAPMessage, or too large');
        pending = Buffer.from(taken.rest);
        queue.push(...taken.messages);
        if (!held) pump();
      } catch (err) {
        this.#guard.fault(err, { remote: socket.remoteAddress });
        socket.destroy();
      }
    });
  }

  /** One framed LDAPMessage (RFC 4511 §4.1.1) of a connection. */
  #handle(socket: Socket, parser: ConnectionWithParser['parser'], msg: Buffer): void {
    const env = checkMessage(msg);
    if (!env) return this.#disconnect(socket, 'malformed LDAPMessage');
    const refused = REFUSED_OPS.get(env.op);
    if (refused) {
      this.#count(REFUSED_NAMES.get(env.op)!, RESULT.unwillingToPerform);
      socket.write(encodeResult(env.messageId, refused, RESULT.unwillingToPerform, 'this directory is read-only'));
    } else if (env.op === EXTENDED_REQUEST) {
      this.#count('extended', RESULT.protocolError);
      socket.write(encodeResult(env.messageId, EXTENDED_RESPONSE, RESULT.protocolError, 'extended operations are not supported'));
    } else if (!LDAPJS_OPS.has(env.op)) {
      return this.#disconnect(socket, `protocolOp 0x${env.op.toString(16)} is not a request`);
    } else {
      try {
        parser.write(Buffer.from(msg));
      } catch (err) {
        return this.#disconnect(socket, (err as Error).message);
      }
    }
  }

  /** RFC 4511 §4.1.1, §4.4.1: a message we cannot parse gets the Notice of Disconnection (protocolError), then the session ends. */
  #disconnect(socket: Socket, why: string): void {
    if (socket.destroyed || socket.writableEnded) return;
    this.#opts.logger?.debug({ why, remote: socket.remoteAddress }, 'ldap: malformed request, disconnecting');
    socket.end(encodeResult(0, EXTENDED_RESPONSE, RESULT.protocolError, 'malformed LDAP message', NOTICE_OF_DISCONNECTION), () => socket.destroy());
  }

  /** A handler that throws is a fault of its request alone: logged, counted, answered `other` (RFC 4511 §4.1.9). */
  #contained(operation: string, res: Res, next: Next, handler: () => void): void {
    const end = res.end.bind(res);
    res.end = (status = RESULT.success) => (this.#count(operation, status), end(status));
    try {
      handler();
    } catch (err) {
      this.#guard.fault(err, { where: 'handler' });
      this.#fail(res, next, RESULT.other, 'internal error');
    }
  }

  #fail(res: Res, next: Next, status: number, message: string, matchedDN = ''): void {
    res.matchedDN = matchedDN;
    res.diagnosticMessage = message;
    res.end(status);
    next();
  }

  /** RFC 4513 §5.1: anonymous binds (handled by ldapjs before routing) succeed; there are no accounts. */
  #bind(req: Req, res: Res, next: Next): void {
    if (req.dn.toString() !== '' && req.credentials === '') {
      // RFC 4513 §5.1.2: unauthenticated binds (a name, no password) are refused by default.
      return this.#fail(res, next, RESULT.unwillingToPerform, 'unauthenticated bind refused; bind anonymously');
    }
    this.#fail(res, next, RESULT.invalidCredentials, 'this directory has no accounts; bind anonymously');
  }

  #search(req: Req, res: Res, next: Next): void {
    const baseText = req.dn.toString();
    const key = baseText === '' ? '' : dnKey(baseText);
    const base = key === '' ? (req.scope === SCOPE.base ? this.#rootDse : undefined) : this.#byKey.get(key);
    if (!base) {
      const ours = this.#entries[0]!;
      const under = key === ours.key || key.endsWith(',' + ours.key);
      return this.#fail(res, next, RESULT.noSuchObject, 'no such entry', under ? ours.dn : '');
    }
    const candidates =
      req.scope === SCOPE.base ? [base]
      : req.scope === SCOPE.one ? this.#entries.filter((e) => e.parentKey === base.key && e !== base)
      : this.#entries.filter((e) => e === base || e.key.endsWith(',' + base.key));
    // Server limits, lowered (never raised) by the client's; 0 means "no client limit".
    const sizeLimit = req.sizeLimit > 0 ? Math.min(req.sizeLimit, this.#opts.sizeLimit) : this.#opts.sizeLimit;
    const timeLimitMs = 1000 * (req.timeLimit > 0 ? Math.min(req.timeLimit, this.#opts.timeLimitSec) : this.#opts.timeLimitSec);
    const matches = compileFilter(req.filter);
    const started = this.#opts.now();
    let sent = 0;
    for (const entry of candidates) {
      if (this.#opts.now() - started > timeLimitMs) return this.#fail(res, next, RESULT.timeLimitExceeded, 'time limit exceeded');
      if (matches(entry) !== 'TRUE') continue;
      if (sent === sizeLimit) return this.#fail(res, next, RESULT.sizeLimitExceeded, `more than ${sizeLimit} entries match`);
      const attributes = selectAttributes(entry, req.attributes).map(
        (a) => new ldap.Attribute({ type: a.type, values: req.typesOnly ? [] : a.values as string[] }),
      );
      res.send(res.createSearchEntry({ objectName: entry.dn, attributes }));
      sent++;
    }
    res.end(RESULT.success);
    next();
  }
}
