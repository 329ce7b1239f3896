import { createHmac, timingSafeEqual } from 'node:crypto';
import { MailmeshError } from '../errors.js';
import { CLASS_ANY, encodeRR, lowerName, nameToWire, readName, TYPE, type Query } from '../dnswire.js';

/**
 * TSIG, secret key transaction authentication (RFC 8945): a secondary signs its AXFR request
 * with a shared HMAC key, we verify it and sign every message of the answer. Only HMAC-SHA-1
 * and HMAC-SHA-2 (RFC 8945 §6); HMAC-MD5 and GSS-TSIG are not offered.
 */

const ALGORITHMS = { 'hmac-sha1': 'sha1', 'hmac-sha224': 'sha224', 'hmac-sha256': 'sha256', 'hmac-sha384': 'sha384', 'hmac-sha512': 'sha512' } as const;
export type TsigAlgorithm = keyof typeof ALGORITHMS;
export const TSIG_ALGORITHMS = Object.keys(ALGORITHMS) as [TsigAlgorithm, ...TsigAlgorithm[]];

/** RFC 8945 §3: TSIG errors, sent in the TSIG record with RCODE NOTAUTH in the header. */
export const TSIG_ERROR = { BADSIG: 16, BADKEY: 17, BADTIME: 18, BADTRUNC: 22 } as const;
const ERROR_NAMES: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

/** RFC 8945 §10: 300 s is the recommended fudge. */
const FUDGE = 300;

export interface TsigKeyConfig {
  /** The key name (a domain name, as the secondary's configuration spells it). */
  name: string;
  algorithm: TsigAlgorithm;
  /** The shared secret, base64. */
  secret: string;
}

interface Key {
  name: Buffer;
  algorithm: Buffer;
  hash: string;
  secret: Buffer;
}

/** RFC 8945 §4.2: the RDATA of a TSIG record. */
interface TsigFields {
  algorithm: Buffer;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

const macLength = (hash: string) => createHmac(hash, '').digest().length;

const malformed = (detail: string): never => {
  throw new MailmeshError('DNS_MALFORMED', detail);
};

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u48 = (n: number) => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

/** RFC 8945 §4.2: Algorithm Name (uncompressed), Time Signed (48 bits), Fudge, MAC Size, MAC, Original ID, Error, Other Len, Other Data. */
function readTsig(rdata: Buffer): TsigFields {
  // A name inside RDATA read on its own: any compression pointer is refused (it could only point forwards).
  const { name, end } = readName(rdata, 0);
  if (end + 10 > rdata.length) malformed('truncated TSIG record');
  const macSize = rdata.readUInt16BE(end + 8);
  const at = end + 10 + macSize;
  if (at + 6 > rdata.length) malformed('truncated TSIG MAC');
  const otherLen = rdata.readUInt16BE(at + 4);
  if (at + 6 + otherLen !== rdata.length) malformed('TSIG record length does not match its fields');
  return {
    algorithm: lowerName(name),
    timeSigned: rdata.readUIntBE(end, 6),
    fudge: rdata.readUInt16BE(end + 6),
    mac: rdata.subarray(end + 10, at),
    originalId: rdata.readUInt16BE(at),
    error: rdata.readUInt16BE(at + 2),
    other: rdata.subarray(at + 6, at + 6 + otherLen),
  };
}

/** RFC 8945 §4.3.3: the TSIG variables (all of them, or only the timers for later messages of a transfer, §5.3.1). */
function variables(keyName: Buffer, f: Omit<TsigFields, 'mac' | 'originalId'>, timersOnly: boolean): Buffer {
  const timers = Buffer.concat([u48(f.timeSigned), u16(f.fudge)]);
  if (timersOnly) return timers;
  const classTtl = Buffer.from([0, CLASS_ANY, 0, 0, 0, 0]);
  return Buffer.concat([keyName, classTtl, f.algorithm, timers, u16(f.error), u16(f.other.length), f.other]);
}

/**
 * Signs the messages of one answer (RFC 8945 §5.3): the first over the request MAC, the
 * response and the TSIG variables; every later message of a multi-message answer (AXFR) over
 * the previous MAC, the message and the timers (§5.3.1). BADKEY and BADSIG answers carry an
 * unsigned TSIG (MAC size 0, §5.3.2).
 */
export class TsigSigner {
  #prior: Buffer;
  #first = true;

  constructor(
    private readonly keyName: Buffer,
    private readonly algorithm: Buffer,
    private readonly key: Key | undefined,
    requestMac: Buffer,
    private readonly now: () => number,
    /** The TSIG error of the answer (0 when the request verified). */
    readonly error = 0,
    private readonly requestTime?: number,
  ) {
    this.#prior = requestMac;
  }

  /** Octets the TSIG record adds to a message (for the UDP size limit). */
  get overhead(): number {
    return this.keyName.length + 10 + this.algorithm.length + 16 + (this.key ? macLength(this.key.hash) : 0) + (this.error === TSIG_ERROR.BADTIME ? 6 : 0);
  }

  /** The message with its TSIG record appended and ARCOUNT raised (RFC 8945 §4.2: the last record). */
  sign(message: Buffer): Buffer {
    const badtime = this.error === TSIG_ERROR.BADTIME;
    const fields = {
      algorithm: this.algorithm,
      // RFC 8945 §5.2.3: a BADTIME answer keeps the request's time and carries ours in Other Data.
      timeSigned: badtime ? this.requestTime! : this.now(),
      fudge: FUDGE,
      error: this.error,
      other: badtime ? u48(this.now()) : Buffer.alloc(0),
    };
    let mac = Buffer.alloc(0);
    if (this.key) {
      const h = createHmac(this.key.hash, this.key.secret);
      if (this.#prior.length) h.update(Buffer.concat([u16(this.#prior.length), this.#prior]));
      h.update(message);
      h.update(variables(this.keyName, fields, !this.#first));
      mac = h.digest();
      this.#prior = mac;
    }
    this.#first = false;
    const rdata = Buffer.concat([fields.algorithm, u48(fields.timeSigned), u16(fields.fudge), u16(mac.length), mac, u16(message.readUInt16BE(0)), u16(fields.error), u16(fields.other.length), fields.other]);
    const out = Buffer.concat([message, encodeRR(this.keyName, TYPE.TSIG, 0, rdata, CLASS_ANY)]);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    return out;
  }
}

export function tsigErrorName(error: number): string {
  return ERROR_NAMES[error] ?? String(error);
}

/** The configured keys, by (key name, algorithm). Bad settings are CONFIG_INVALID at start. */
export class TsigKeyring {
  readonly #keys = new Map<string, Key>();

  constructor(keys: readonly TsigKeyConfig[], private readonly now: () => number) {
    for (const k of keys) {
      const hash = ALGORITHMS[k.algorithm];
      if (!hash) throw new MailmeshError('CONFIG_INVALID', `dns.transfer.tsig: unknown algorithm ${JSON.stringify(k.algorithm)} (use one of ${TSIG_ALGORITHMS.join(', ')})`);
      const secret = Buffer.from(k.secret, 'base64');
      // RFC 2104 §3: a key shorter than the hash output weakens the MAC; it is refused here.
      if (secret.length < macLength(hash) || secret.toString('base64').replace(/=+$/, '') !== k.secret.trim().replace(/=+$/, '')) {
        throw new MailmeshError('CONFIG_INVALID', `dns.transfer.tsig ${k.name}: the secret must be base64 of at least as many octets as ${k.algorithm} outputs`);
      }
      let name: Buffer;
      try {
        name = lowerName(nameToWire(k.name));
      } catch (e) {
        throw new MailmeshError('CONFIG_INVALID', `dns.transfer.tsig: bad key name ${JSON.stringify(k.name)}`, { cause: e });
      }
      const algorithm = nameToWire(k.algorithm);
      this.#keys.set(name.toString('latin1') + algorithm.toString('latin1'), { name, algorithm, hash, secret });
    }
  }

  get size(): number {
    return this.#keys.size;
  }

  /**
   * RFC 8945 §5.2: checks the TSIG of a request. Returns the signer of the answer, whose
   * `error` is 0 when the request is authentic, else BADKEY, BADSIG, BADTIME or BADTRUNC (the
   * answer is then NOTAUTH). A TSIG that cannot be read is DNS_MALFORMED (FORMERR).
   */
  verify(msg: Buffer, q: Query): TsigSigner {
    const t = q.tsig!;
    if (t.klass !== CLASS_ANY || t.ttl !== 0) malformed('TSIG record must have class ANY and TTL 0');
    const f = readTsig(t.rdata);
    const keyName = lowerName(t.name);
    const key = this.#keys.get(keyName.toString('latin1') + f.algorithm.toString('latin1'));
    const answer = (k: Key | undefined, error: number, mac: Buffer = Buffer.alloc(0)) => new TsigSigner(keyName, f.algorithm, k, mac, this.now, error, f.timeSigned);
    // §5.2.1: an unknown key or algorithm.
    if (!key) return answer(undefined, TSIG_ERROR.BADKEY);
    const full = createHmac(key.hash, key.secret);
    // §5.2.2: the request as it was signed: no TSIG, ARCOUNT one less, the original ID.
    const request = Buffer.from(msg.subarray(0, t.start));
    request.writeUInt16BE(request.readUInt16BE(10) - 1, 10);
    request.writeUInt16BE(f.originalId, 0);
    const expected = full.update(request).update(variables(keyName, f, false)).digest();
    // §5.2.2.1: a MAC longer than the hash, or shorter than max(10, half of it), is FORMERR.
    if (f.mac.length > expected.length || f.mac.length < Math.max(10, Math.ceil(expected.length / 2))) malformed('TSIG MAC size out of range');
    if (!timingSafeEqual(f.mac, expected.subarray(0, f.mac.length))) return answer(undefined, TSIG_ERROR.BADSIG);
    // §5.2.3: the request must be signed within its fudge of our time; the answer to that is signed.
    if (Math.abs(this.now() - f.timeSigned) > f.fudge) return answer(key, TSIG_ERROR.BADTIME, f.mac);
    // §5.2.4: we accept untruncated MACs only.
    if (f.mac.length < expected.length) return answer(key, TSIG_ERROR.BADTRUNC, f.mac);
    return answer(key, 0, f.mac);
  }
}
