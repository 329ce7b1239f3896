import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { MailmeshError } from '../errors.js';

export interface TlsConfig {
  /** PEM certificate chain file. */
  cert?: string;
  /** PEM private key file. */
  key?: string;
  /** Generate a self-signed certificate at start when no cert/key is configured. */
  selfSigned?: boolean;
}

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/**
 * A self-signed server certificate (RFC 5280 §4.1) for `names` (DNS names and IP addresses, in the
 * subjectAltName, RFC 5280 §4.2.1.6), ECDSA P-256, valid for a year from `now`.
 */
export async function selfSignedCertificate(names: string[], now = new Date()): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // RFC 5280 §4.1.2.2: a positive integer
  serial[0]! |= 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${names[0] ?? 'localhost'}, O=mailmesh self-signed`,
      notBefore: new Date(now.getTime() - 5 * 60_000),
      notAfter: new Date(now.getTime() + 365 * 86400_000),
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

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new MailmeshError('CONFIG_INVALID', `http.tls.${what}: ${(e as Error).message}`);
  }
}

/**
 * The TLS material to serve HTTPS with, or undefined for plain HTTP: the configured files, or a
 * fresh self-signed certificate for `host`, localhost and the loopback addresses.
 */
export async function tlsMaterial(c: TlsConfig | undefined, host: string): Promise<{ cert: string; key: string } | undefined> {
  if (!c) return undefined;
  if (c.cert || c.key) {
    if (!c.cert || !c.key) throw new MailmeshError('CONFIG_INVALID', 'http.tls needs both cert and key');
    return { cert: readPem(c.cert, 'cert'), key: readPem(c.key, 'key') };
  }
  if (!c.selfSigned) return undefined;
  const names = [...new Set([host, 'localhost', '127.0.0.1', '::1'].filter((n) => n && n !== '0.0.0.0' && n !== '::'))];
  return selfSignedCertificate(names);
}
