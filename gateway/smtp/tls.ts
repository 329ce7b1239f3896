import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TlsKeyPair {
  /** PEM private key (PKCS #8). */
  key: string;
  /** PEM certificate. */
  cert: string;
}

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/**
 * A self-signed ECDSA P-256 certificate for `hostname`, for STARTTLS when none is configured.
 * SMTP peers encrypt opportunistically without checking it (RFC 7435); a configured
 * certificate is needed for peers that verify (DANE, MTA-STS).
 */
export async function selfSignedTls(hostname: string, opts: { now: Date; validDays?: number }): Promise<TlsKeyPair> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair;
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${hostname}`,
    notBefore: new Date(opts.now.getTime() - 5 * 60_000),
    notAfter: new Date(opts.now.getTime() + (opts.validDays ?? 365) * 86400_000),
    keys,
    signingAlgorithm: ECDSA,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      // RFC 5280 §4.2.1.12 id-kp-serverAuth; §4.2.1.6 the host name as a dNSName.
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1']),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: hostname }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), cert: cert.toString('pem') };
}
