/**
 * The Authentication-Results header field (RFC 8601) the receiving gateway adds to the inner
 * message. Method `mailmesh` (an extension method, RFC 8601 §2.7.6; not registered with IANA,
 * so consumers that do not know it ignore it, §4.1), result per signature status:
 *
 *   Authentication-Results: gw.beta.test;
 *     mailmesh=pass (decrypted pgp-mime; signature valid)
 *     header.d=alpha.test header.b=<fingerprint>
 *
 * pass = valid, fail = invalid, none = absent, neutral = unknown-signer (RFC 8601 §2.7.1 meanings).
 * `header.d` names the signing domain and `header.b` the key fingerprint, as DKIM's do
 * (RFC 8601 §2.7.1, RFC 6008). The registered `smime` method (RFC 7281) is not used: it
 * describes an S/MIME signature that a body part of the delivered message still carries, and
 * the tunnel signature is gone once the gateway has unwrapped the message.
 */
import { MailmeshError } from '../../directory/errors.js';
import { parseEntity } from './mime.js';
import type { DecryptResult, SignatureStatus } from './types.js';

export const AUTH_METHOD = 'mailmesh';

const RESULTS: Record<SignatureStatus, string> = { valid: 'pass', invalid: 'fail', absent: 'none', 'unknown-signer': 'neutral' };

// RFC 8601 §2.2: authserv-id = value (RFC 2045 token); a host name in practice.
const AUTHSERV_ID = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

/** The header field, folded (RFC 5322 §2.2.3), with its final CRLF. */
export function authenticationResults(authservId: string, r: Pick<DecryptResult, 'format' | 'signature' | 'signerDomain' | 'signerFingerprint'>): string {
  if (!AUTHSERV_ID.test(authservId)) throw new MailmeshError('CONFIG_INVALID', `authserv-id ${JSON.stringify(authservId)} is not a host name`);
  const props: string[] = [];
  // RFC 8601 §2.2: pvalue is a value or a mailbox/domain; domain names and hex are tokens.
  if (r.signerDomain) props.push(`header.d=${r.signerDomain}`);
  if (r.signerFingerprint && /^[0-9A-Fa-f]+$/.test(r.signerFingerprint)) props.push(`header.b=${r.signerFingerprint}`);
  const lines = [`Authentication-Results: ${authservId};`, `\t${AUTH_METHOD}=${RESULTS[r.signature]} (decrypted ${r.format}; signature ${r.signature})`];
  if (props.length) lines.push(`\t${props.join(' ')}`);
  return lines.join('\r\n') + '\r\n';
}

/** RFC 8601 §2.2: the authserv-id of a field value, comments (§2.3 CFWS) and quotes removed. */
function authservIdOf(value: string): string {
  return value.split(';')[0]!.replace(/\([^)]*\)/g, '').trim().replace(/^"(.*)"$/, '$1').split(/\s+/)[0]!.toLowerCase();
}

/**
 * Prepends our Authentication-Results to the inner message, after deleting any that claim our
 * authserv-id (RFC 8601 §5: a forged one inside the tunnel must not survive). All other bytes
 * stay as they are.
 */
export function addAuthenticationResults(inner: Buffer, authservId: string, r: Parameters<typeof authenticationResults>[1]): Buffer {
  const field = Buffer.from(authenticationResults(authservId, r), 'latin1');
  const { fields } = parseEntity(inner);
  const headerLength = fields.reduce((n, f) => n + f.raw.length, 0);
  const kept = fields.filter((f) => f.key !== 'authentication-results' || authservIdOf(f.value) !== authservId.toLowerCase()).map((f) => f.raw);
  return Buffer.concat([field, ...kept, inner.subarray(headerLength)]);
}
