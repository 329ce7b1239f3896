import { readFileSync } from 'node:fs';
import { MailmeshError } from '../errors.js';
import { selfSignedCertificate } from '../tls.js';

export interface TlsConfig {
  /** PEM certificate chain file. */
  cert?: string;
  /** PEM private key file. */
  key?: string;
  /** Generate a self-signed certificate at start when no cert/key is configured. */
  selfSigned?: boolean;
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
