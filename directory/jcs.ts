import { MailmeshError } from './errors.js';

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string a JSON value signs as.
 * Throws SIGNED_RECORD_MALFORMED for what I-JSON (RFC 7493) does not allow.
 */
export function canonicalize(value: unknown): string {
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // RFC 8785 §3.2.2.3: ECMAScript Number serialization; NaN and ±Infinity are not JSON.
      if (!Number.isFinite(value)) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `number ${value} is not JSON`);
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      return canonicalString(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
      if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
        throw new MailmeshError('SIGNED_RECORD_MALFORMED', 'only plain objects are JSON');
      }
      // RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names (the default sort);
      // undefined members are absent, as in JSON.stringify.
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${canonicalString(k)}:${canonicalize(v)}`).join(',')}}`;
    }
    default:
      throw new MailmeshError('SIGNED_RECORD_MALFORMED', `${typeof value} is not JSON`);
  }
}

// RFC 7493 §2.1 (I-JSON): no unpaired surrogates.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * RFC 8785 §3.2.2.2: `"`, `\` and the controls U+0000–U+001F escaped as ECMAScript's
 * JSON.stringify does (\b \t \n \f \r, else \u00xx in lower-case hex); everything else as is.
 */
function canonicalString(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new MailmeshError('SIGNED_RECORD_MALFORMED', 'string with a lone surrogate');
  return JSON.stringify(s);
}

/** Parses JSON text that must already be in canonical form (what a signature covers); anything else is refused. */
export function parseCanonical(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MailmeshError('SIGNED_RECORD_MALFORMED', `not JSON: ${(e as Error).message}`);
  }
  if (canonicalize(value) !== text) throw new MailmeshError('SIGNED_RECORD_MALFORMED', 'the payload is not in RFC 8785 canonical form');
  return value;
}
