import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * RFC 6750 §2.1: whether an `Authorization` header is `Bearer <token>`, compared in constant
 * time (SHA-256 digests, so the lengths are equal whatever was sent).
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return authorization !== undefined && timingSafeEqual(digest(authorization), digest(`Bearer ${token}`));
}
