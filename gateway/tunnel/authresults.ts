/**
 * The Authentication-Results header field (RFC 8601) the receiving gateway adds to the inner
 * message, and the removal of every field that claims our authserv-id (RFC 8601 §5). Method
 * `mailmesh` (an extension method, RFC 8601 §2.7.6; not registered with IANA, so consumers
 * that do not know it ignore it, §4.1):
 *
 *   Authentication-Results: gw.beta.test;
 *     mailmesh=pass (decrypted pgp-mime, openpgp-seipd with integrity; signature valid; author aligned, strict)
 *     header.d=alpha.test header.b=<fingerprint> header.from=alpha.test
 *     policy.cipher=openpgp-seipd policy.integrity=yes policy.key=dnssec
 *
 * pass = a valid signature by the key of a domain aligned with the From domain; fail = an
 * invalid signature, or a valid one by a domain not aligned with the From domain; none =
 * unsigned; neutral = signed by a key no source knows for the domain (RFC 8601 §2.7.1
 * meanings). `header.d` names the signing domain and `header.b` the key fingerprint, as
 * DKIM's do (RFC 8601 §2.7.1, RFC 6008); `header.from` the RFC 5322 From domain (as DMARC's,
 * RFC 7489 §11.2). The `policy.*` properties (RFC 8601 §2.3 ptype "policy") say how the
 * content was protected and where the key came from. The registered `smime` method (RFC 7281)
 * is not used: it describes an S/MIME signature that a body part of the delivered message
 * still carries, and the tunnel signature is gone once the gateway has unwrapped the message.
 */
import type { Domain } from '../../directory/domain.js';
import { MailmeshError } from '../errors.js';
import { authservIdOf, fieldValueOf, type HeaderSection } from '../header.js';
import type { DecryptResult, SignatureStatus } from './types.js';

export const AUTH_METHOD = 'mailmesh';

/** What the receiving gateway checked, as the header field reports it. */
export interface InboundResult extends Pick<DecryptResult, 'format' | 'signature' | 'signerDomain' | 'signerFingerprint' | 'cipher' | 'integrity'> {
  /** The RFC 5322 From domain of the inner message (one From field, one mailbox), if any. */
  author?: Domain;
  /** Whether the signing domain is bound to the author domain under `alignment`. */
  aligned: boolean;
  alignment: 'strict' | 'relaxed';
  /** How the verification key was authenticated (KeyTrust), else its discovery source. */
  key?: string;
}

const RESULTS: Record<SignatureStatus, string> = { valid: 'pass', invalid: 'fail', absent: 'none', 'unknown-signer': 'neutral', 'key-changed': 'fail' };

/** RFC 8601 §2.7.1: the method's result: pass only for a valid signature aligned with the author. */
export function mailmeshResult(r: Pick<InboundResult, 'signature' | 'aligned'>): string {
  return r.signature === 'valid' && !r.aligned ? 'fail' : RESULTS[r.signature];
}

// RFC 8601 §2.2: authserv-id = value (RFC 2045 token); a host name in practice.
const AUTHSERV_ID = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;
// RFC 8601 §2.2 pvalue: a token (RFC 2045 §5.1); our values are names, hex and domains.
const PVALUE = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

/** The header field, folded (RFC 5322 §2.2.3), with its final CRLF. */
export function authenticationResults(authservId: string, r: InboundResult): string {
  if (!AUTHSERV_ID.test(authservId)) throw new MailmeshError('CONFIG_INVALID', `authserv-id ${JSON.stringify(authservId)} is not a host name`);
  const ok = (v: string | undefined): v is string => v !== undefined && PVALUE.test(v);
  // RFC 8601 §2.3 propspec = ptype "." property "=" pvalue.
  const header: string[] = [];
  if (ok(r.signerDomain)) header.push(`header.d=${r.signerDomain}`);
  if (ok(r.signerFingerprint) && /^[0-9A-Fa-f]+$/.test(r.signerFingerprint)) header.push(`header.b=${r.signerFingerprint}`);
  if (ok(r.author)) header.push(`header.from=${r.author}`);
  const policy = [`policy.cipher=${ok(r.cipher) ? r.cipher : 'unknown'}`, `policy.integrity=${r.integrity ? 'yes' : 'no'}`];
  if (ok(r.key)) policy.push(`policy.key=${r.key}`);
  const cipher = `${ok(r.cipher) ? r.cipher : 'unknown cipher'} ${r.integrity ? 'with' : 'without'} integrity`;
  const author = !r.author ? 'no single author domain' : r.signature !== 'valid' ? `author ${r.author}` : `author ${r.aligned ? 'aligned' : 'not aligned'}, ${r.alignment}`;
  // RFC 8601 §2.3, RFC 5322 §3.2.2: a comment; every word in it is ours or a checked domain name.
  const comment = `(decrypted ${r.format}, ${cipher}; signature ${r.signature}; ${author})`;
  const lines = [`Authentication-Results: ${authservId};`, `\t${AUTH_METHOD}=${mailmeshResult(r)} ${comment}`];
  if (header.length) lines.push(`\t${header.join(' ')}`);
  lines.push(`\t${policy.join(' ')}`);
  return lines.join('\r\n') + '\r\n';
}

/**
 * RFC 8601 §5: removes from the header section every Authentication-Results field that claims
 * our authserv-id, in any spelling (CFWS and nested comments, quoting, case, a trailing dot,
 * folding), and every one whose authserv-id cannot be read (a lenient reader might find ours
 * in it). All other bytes stay as they are; the same buffer comes back when nothing is removed.
 */
export function removeOurResults(header: HeaderSection, authservId: string): Buffer {
  const ours = authservIdOf(authservId);
  const { message, fields } = header;
  const drop = fields.filter((f) => {
    if (f.key !== 'authentication-results') return false;
    const id = authservIdOf(fieldValueOf(message, f, 'utf8'));
    return id === undefined || id === ours;
  });
  if (drop.length === 0) return message;
  const kept: Buffer[] = [];
  let pos = 0;
  for (const f of drop) {
    kept.push(message.subarray(pos, f.start));
    pos = f.end;
  }
  kept.push(message.subarray(pos));
  return Buffer.concat(kept);
}

/** Prepends our Authentication-Results to the inner message (its header split once), after removing any that claim our authserv-id. */
export function addAuthenticationResults(inner: HeaderSection, authservId: string, r: InboundResult): Buffer {
  const field = Buffer.from(authenticationResults(authservId, r), 'latin1');
  return Buffer.concat([field, removeOurResults(inner, authservId)]);
}
