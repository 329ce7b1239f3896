import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** A PEM private key (PKCS #8) and its PEM certificate. */
export interface TlsKeyPair {
  key: string;
  cert: string;
}

/**
 * A self-signed server certificate (RFC 5280 §4.1) for `names` (DNS names and IP addresses, in the
 * subjectAltName, RFC 5280 §4.2.1.6), ECDSA P-256, valid `validDays` (default a year) from `now`.
 * Used for HTTPS (`http.tls.selfSigned`) and STARTTLS (when no certificate is configured; SMTP
 * peers encrypt opportunistically without checking it, RFC 7435).
 */
export async function selfSignedCertificate(names: string[], now = new Date(), validDays = 365): Promise<TlsKeyPair> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // RFC 5280 §4.1.2.2: a positive integer
  serial[0]! |= 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${names[0] ?? 'localhost'}`,
      notBefore: new Date(now.getTime() - 5 * 60_000),
      notAfter: new Date(now.getTime() + validDays * 86400_000),
      keys,
      signingAlgorithm: ECDSA,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n }))),
      ],
    },
    webcrypto as unknown as Crypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: cert.toString('pem'), key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}


/**
 * The TLS material a listener serves, replaceable while it runs: SIGHUP re-reads the configured
 * files, ACME (RFC 8555) renews, and every subscribed listener swaps its secure context for new
 * handshakes without dropping the connections it has (node:tls `setSecureContext`).
 */
export class TlsHolder {
  #pair: TlsKeyPair;
  readonly #listeners = new Set<(pair: TlsKeyPair) => void>();

  constructor(pair: TlsKeyPair) {
    this.#pair = pair;
  }

  current(): TlsKeyPair {
    return this.#pair;
  }

  /** Replaces the material; every subscriber gets it at once. */
  set(pair: TlsKeyPair): void {
    this.#pair = pair;
    for (const f of this.#listeners) f(pair);
  }

  /** Calls `f` with each new pair; returns the unsubscribe function. */
  onChange(f: (pair: TlsKeyPair) => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }
}
