import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { MailmeshError } from '../directory/errors.js';
import { tlsMaterial } from '../directory/http/tls.js';
import type { TlsHolder, TlsKeyPair } from '../directory/tls.js';
import type { PolicySettings } from '../gateway/policy.js';
import { gatewayOptions } from '../gateway/smtp/settings.js';
import type { Config } from './config.js';

/**
 * What serve does for a supervisor (docs/operations.md): listen errors that name the face and its
 * setting, and SIGHUP's reload of the TLS certificates and the policy.
 */

/** A face's listen setting, as the configuration and the environment spell it. */
function setting(face: string, key: 'host' | 'port'): string {
  return `${face}.${key} or MAILMESH_${face.toUpperCase()}__${key.toUpperCase()}`;
}

/**
 * Runs a face's listen; a refused address becomes LISTEN_FAILED naming the face, the address and
 * the setting to change (exit 69). `transport` tells DNS's UDP from its TCP listener.
 */
export async function listening<T>(face: 'http' | 'dns' | 'ldap' | 'smtp', host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const where = `${face}.port ${port} on ${host}${face === 'dns' ? (err.syscall === 'bind' ? ' (UDP)' : ' (TCP)') : ''}`;
    const why: Record<string, string> = {
      EADDRINUSE: `${where} is in use (EADDRINUSE): set ${setting(face, 'port')}`,
      EACCES: `${where} is not allowed to this user (EACCES): set ${setting(face, 'port')} above 1023, or grant CAP_NET_BIND_SERVICE`,
      EADDRNOTAVAIL: `${face}.host ${host} is no address of this machine (EADDRNOTAVAIL): set ${setting(face, 'host')}`,
    };
    const text = typeof err.code === 'string' ? why[err.code] : undefined;
    throw text ? new MailmeshError('LISTEN_FAILED', text, { cause: e }) : e;
  }
}

/** What SIGHUP can change in a running serve. */
export interface Reloadable {
  http?: TlsHolder;
  smtp?: TlsHolder;
  policy?: { setPolicy(p: PolicySettings): void };
}

/** A key pair Node's TLS accepts (the key matches the certificate), or CONFIG_INVALID naming the setting. */
function checked(what: string, pair: TlsKeyPair | undefined): TlsKeyPair | undefined {
  if (!pair) return undefined;
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new MailmeshError('CONFIG_INVALID', `${what}: ${(e as Error).message}`, { cause: e });
  }
  return pair;
}

/**
 * SIGHUP: the configured certificate files of HTTPS (http.tls) and STARTTLS (smtp.tlsCert/tlsKey)
 * and the `policy` section of `c` take effect for new handshakes and transactions; open
 * connections keep theirs. Everything is read and checked first: an invalid configuration throws
 * and changes nothing. Other settings need a restart.
 */
export async function reload(r: Reloadable, c: Config, log: Logger): Promise<void> {
  // With ACME on, the certificates are ACME's (cli/acme.ts): the files would replace them until the next renewal.
  const files = !c.acme.enabled;
  const http = files && r.http && c.http.tls.cert ? checked('http.tls', await tlsMaterial(c.http.tls, c.http.host)) : undefined;
  // gatewayOptions reads the files into a pair (never a holder).
  const smtp = checked('smtp.tlsCert', files && r.smtp && c.smtp.tlsCert ? (gatewayOptions(c.smtp).tls as TlsKeyPair) : undefined);
  if (http) r.http!.set(http);
  if (smtp) r.smtp!.set(smtp);
  r.policy?.setPolicy(c.policy);
  log.info({ httpTls: Boolean(http), smtpTls: Boolean(smtp), acme: c.acme.enabled, policy: Boolean(r.policy), source: c.source }, 'configuration reloaded');
}

/** Runs every shutdown step in order, each despite the failure of those before; rejects when one failed (exit 70). */
export async function closeAll(steps: (() => Promise<void>)[], log: Logger): Promise<void> {
  let failed = 0;
  for (const f of steps) {
    await f().catch((err) => {
      failed++;
      log.error({ err }, 'shutdown step failed');
    });
  }
  if (failed) throw new MailmeshError('INTERNAL', `${failed} shutdown step(s) failed`);
}
