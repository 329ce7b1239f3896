import { selfSignedCertificate } from '../../directory/tls.js';

export interface TlsKeyPair {
  /** PEM private key (PKCS #8). */
  key: string;
  /** PEM certificate. */
  cert: string;
}

/**
 * A self-signed certificate for `hostname` (directory/tls.ts), for STARTTLS when none is configured.
 * SMTP peers encrypt opportunistically without checking it (RFC 7435); a configured
 * certificate is needed for peers that verify (DANE, MTA-STS).
 */
export function selfSignedTls(hostname: string, opts: { now: Date; validDays?: number }): Promise<TlsKeyPair> {
  return selfSignedCertificate([hostname], opts.now, opts.validDays);
}
