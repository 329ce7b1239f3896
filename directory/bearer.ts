import { createHash, timingSafeEqual } from 'node:crypto';
import { MailmeshError } from './errors.js';

/**
 * RFC 6750 §2.1: whether an `Authorization` header is `Bearer <token>`, compared in constant
 * time (SHA-256 digests, so the lengths are equal whatever was sent).
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return authorization !== undefined && timingSafeEqual(digest(authorization), digest(`Bearer ${token}`));
}

/**
 * The check of every operation behind the operator token (import, WebMail reset), so they answer
 * alike: no token configured, the operation is off (FEDERATION_DISABLED, `disabled` says which
 * setting, for the log); a missing or wrong token is UNAUTHORIZED, which the HTTP face answers
 * 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
 */
export function requireBearer(authorization: string | undefined, token: string | undefined, disabled: string): void {
  if (!token) throw new MailmeshError('FEDERATION_DISABLED', disabled);
  if (!bearerMatches(authorization, token)) throw new MailmeshError('UNAUTHORIZED', 'no bearer token, or not the configured one');
}
