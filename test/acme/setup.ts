import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import { serve, type Running } from '../../cli/app.js';
import { loadConfig } from '../../cli/config.js';
import type { TlsHolder } from '../../directory/tls.js';
import { run } from '../helpers.js';

export const NAME = 'mail.example.test';

/** Log lines of a node as objects, and a wait for the first that matches. */
export class Logs {
  readonly lines: Record<string, unknown>[] = [];
  readonly #waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  readonly logger = pino({ level: 'info' }, { write: (s: string) => this.#add(JSON.parse(s) as Record<string, unknown>) });

  #add(l: Record<string, unknown>): void {
    this.lines.push(l);
    for (const w of [...this.#waiters]) if (w.match(l)) w.resolve(l);
  }

  wait(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.lines.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }
}

/**
 * `mailmesh serve` in this process with ACME on: the HTTP face on `httpPort` (where pebble's
 * validation connects), SMTP on port 0, no DNS or LDAP face, no demo domain.
 */
export async function startNode(t: Test, o: { cwd: string; httpPort: number; env: Record<string, string> }): Promise<{ running: Running; logs: Logs }> {
  const env = {
    MAILMESH_HTTP__PORT: String(o.httpPort), MAILMESH_DNS__ENABLED: 'false', MAILMESH_LDAP__ENABLED: 'false', MAILMESH_SMTP__PORT: '0',
    MAILMESH_SMTP__INTERNAL_SERVER: '127.0.0.1:1', MAILMESH_FEDERATION__RESOLVERS: '127.0.0.1:1', MAILMESH_DEMO__DOMAIN: '',
    MAILMESH_ACME__ENABLED: 'true', MAILMESH_ACME__DOMAINS: NAME, ...o.env,
  };
  const logs = new Logs();
  const running = await serve(loadConfig({ env, cwd: o.cwd }), logs.logger);
  t.teardown(() => running.close());
  return { running, logs };
}

/** The next certificate `holder` is given. */
export function nextCert(holder: TlsHolder): Promise<string> {
  return new Promise((resolve) => {
    const off = holder.onChange((p) => {
      off();
      resolve(p.cert);
    });
  });
}

/** The leaf of a PEM chain. */
export function leaf(chain: string): X509Certificate {
  return new X509Certificate(chain);
}

/**
 * A real client's verdict on a listener's certificate: openssl s_client (STARTTLS for SMTP, RFC
 * 3207) verifying against `rootPem` and the name; returns the exit code and the leaf it saw.
 */
export async function openssl(dir: string, address: string, rootPem: string, smtp: boolean): Promise<{ code: number; leaf?: X509Certificate; output: string }> {
  const ca = join(dir, 'root.pem');
  writeFileSync(ca, rootPem);
  const args = ['s_client', '-connect', address, '-servername', NAME, '-verify_hostname', NAME, '-verify_return_error', '-CAfile', ca, ...(smtp ? ['-starttls', 'smtp'] : [])];
  const r = await run('openssl', args, { input: smtp ? 'QUIT\r\n' : '', allowFail: true });
  const out = r.stdout.toString();
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0];
  return { code: r.code, leaf: pem ? leaf(pem) : undefined, output: out + r.stderr };
}
