import { isIP } from 'node:net';
import { MailmeshError } from '../errors.js';
import { addressRdata } from '../dnswire.js';

/**
 * Client addresses as prefixes: the transfer ACL (`dns.transfer.allow`), the RRL exemptions,
 * and the RRL buckets (one per /24 or /56) all compare the leading bits of an address.
 */

/** The address in network order (RFC 791 §3.1, RFC 4291 §2.5); an IPv4-mapped IPv6 address is its IPv4 address. */
function addressBytes(address: string): Buffer | undefined {
  const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/%.*$/, '');
  return isIP(a) ? addressRdata(a).rdata : undefined;
}

/** The first `bits` bits of an address, the rest zero. */
function prefixOf(bytes: Buffer, bits: number): Buffer {
  const out = Buffer.alloc(bytes.length);
  const whole = Math.min(bits >> 3, bytes.length);
  bytes.copy(out, 0, 0, whole);
  if (whole < bytes.length && bits & 7) out[whole] = bytes[whole]! & (0xff << (8 - (bits & 7)));
  return out;
}

/**
 * A predicate over client addresses from CIDR blocks (RFC 4632 §3.1; `::1/128`, or one address).
 * `setting` names the configuration key in the CONFIG_INVALID for a bad entry.
 */
export function addressList(entries: readonly string[], setting: string): (address: string) => boolean {
  const blocks = entries.map((entry) => {
    const [addr = '', bits, extra] = entry.trim().split('/');
    const bytes = addressBytes(addr);
    const max = (bytes?.length ?? 0) * 8;
    const length = bits === undefined ? max : Number(bits);
    if (!bytes || extra !== undefined || (bits !== undefined && !/^\d+$/.test(bits)) || length > max) {
      throw new MailmeshError('CONFIG_INVALID', `${setting}: not an address or CIDR block: ${JSON.stringify(entry)}`);
    }
    return { length, prefix: prefixOf(bytes, length) };
  });
  return (address) => {
    const bytes = addressBytes(address);
    return !!bytes && blocks.some((b) => b.prefix.length === bytes.length && prefixOf(bytes, b.length).equals(b.prefix));
  };
}

export interface RrlOptions {
  /** Responses per second to one client prefix; 0 turns rate limiting off. */
  responsesPerSecond: number;
  /** Responses a prefix may receive at once before the rate applies (the bucket size). */
  burst: number;
  /** Every slip-th dropped response goes out truncated (TC, no answer) instead; 0: none do. */
  slip: number;
  ipv4PrefixLength: number;
  ipv6PrefixLength: number;
  /** Addresses and CIDR blocks never limited. */
  exempt: string[];
}

export const RRL_DEFAULTS: RrlOptions = { responsesPerSecond: 100, burst: 200, slip: 2, ipv4PrefixLength: 24, ipv6PrefixLength: 56, exempt: [] };

/** Prefix buckets tracked at most; the least recently seen is forgotten first. */
const MAX_TRACKED = 100_000;

export type RrlAction = 'send' | 'slip' | 'drop';

/**
 * Response-rate limiting on UDP, in the spirit of BIND's and Knot's RRL: a token bucket per
 * client prefix (/24, /56). A spoofed source cannot turn us into an amplifier beyond the
 * rate; a real client whose answers are dropped gets every slip-th as TC and retries over TCP
 * (RFC 7766 §5), where there is no limit of this kind (TCP cannot be spoofed).
 */
export class ResponseRateLimiter {
  readonly #o: RrlOptions;
  readonly #exempt: (address: string) => boolean;
  readonly #buckets = new Map<string, { tokens: number; at: number; dropped: number }>();

  constructor(o: Partial<RrlOptions>, private readonly now: () => number) {
    this.#o = { ...RRL_DEFAULTS, ...o };
    for (const k of ['responsesPerSecond', 'burst', 'slip'] as const) {
      if (!(this.#o[k] >= 0)) throw new MailmeshError('CONFIG_INVALID', `dns.rrl.${k} must be 0 or more`);
    }
    if (!(this.#o.ipv4PrefixLength >= 0 && this.#o.ipv4PrefixLength <= 32 && this.#o.ipv6PrefixLength >= 0 && this.#o.ipv6PrefixLength <= 128)) {
      throw new MailmeshError('CONFIG_INVALID', 'dns.rrl: prefix lengths are 0–32 (IPv4) and 0–128 (IPv6)');
    }
    this.#exempt = addressList(this.#o.exempt, 'dns.rrl.exempt');
  }

  get enabled(): boolean {
    return this.#o.responsesPerSecond > 0;
  }

  /** Whether a response to this address may go out now, go out truncated, or is dropped. */
  check(address: string): RrlAction {
    if (!this.enabled || this.#exempt(address)) return 'send';
    const bytes = addressBytes(address);
    if (!bytes) return 'send';
    const key = prefixOf(bytes, bytes.length === 4 ? this.#o.ipv4PrefixLength : this.#o.ipv6PrefixLength).toString('latin1');
    const now = this.now();
    let b = this.#buckets.get(key);
    if (b) {
      this.#buckets.delete(key); // re-inserted below: the Map's order is the order last seen
      b.tokens = Math.min(this.#o.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.#o.responsesPerSecond);
      b.at = now;
    } else {
      if (this.#buckets.size >= MAX_TRACKED) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: this.#o.burst, at: now, dropped: 0 };
    }
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'send';
    }
    b.dropped++;
    return this.#o.slip > 0 && b.dropped % this.#o.slip === 0 ? 'slip' : 'drop';
  }
}
