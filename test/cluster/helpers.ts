import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { captureSink, type CaptureSink } from '../../cli/demo/loopback.js';
import { SmtpClient } from '../../gateway/smtp/client.js';
import { redisPrefix, tempDir } from '../helpers.js';

// The built CLI (npm test builds first; `npm run build` before running these files alone).
const MAIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;

/** A `mailmesh serve` process of a cluster test. */
export interface Node {
  child: ChildProcess;
  smtp: { host: string; port: number };
  exited: Promise<number | null>;
  /** SIGKILL, resolves once the process is gone. */
  kill(): Promise<void>;
}

/** A fresh key prefix with a hash tag; its keys are deleted when the test ends. */
export const clusterPrefix = (t: Test, url: string): string => redisPrefix(t, url);

/** A capture sink (the internal mail server of every node), closed at the end. */
export async function sink(t: Test, host?: string): Promise<CaptureSink> {
  const s = await captureSink(host);
  t.teardown(() => s.close());
  return s;
}

/**
 * Starts `mailmesh serve` on a store with HTTP, DNS and LDAP off and SMTP on port 0, inbound
 * mail relayed to `internalPort`; resolves with its SMTP address once it logs that it is
 * serving (no sleeps). Killed when the test ends.
 */
export async function startNode(
  t: Test,
  env: { url: string; prefix: string; masterKey: string; demoDomain: string; internalPort: number },
  opts: { wrap?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Node> {
  // `wrap` runs it through another command (`ip netns exec <ns>`); `opts.env` overrides the settings below.
  const [cmd, ...args] = [...(opts.wrap ?? []), 'node', MAIN, 'serve'];
  const child = spawn(cmd!, args, {
    cwd: tempDir(t, 'mailmesh-node-'),
    env: {
      ...process.env,
      MAILMESH_LOG__PRETTY: 'false',
      MAILMESH_HTTP__ENABLED: 'false',
      MAILMESH_DNS__ENABLED: 'false',
      MAILMESH_LDAP__ENABLED: 'false',
      MAILMESH_SMTP__HOST: '127.0.0.1',
      MAILMESH_SMTP__PORT: '0',
      MAILMESH_SMTP__INTERNAL_SERVER: `127.0.0.1:${env.internalPort}`,
      MAILMESH_SMTP__NEXT_HOP_TLS: 'none',
      MAILMESH_STORE__URL: env.url,
      MAILMESH_STORE__REDIS_PREFIX: env.prefix,
      MAILMESH_MASTER_KEY: env.masterKey,
      MAILMESH_DEMO__DOMAIN: env.demoDomain,
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.teardown(kill);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const smtp = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; addresses?: { smtp?: string } };
        if (l.msg === 'mailmesh is serving' && l.addresses?.smtp) resolve(l.addresses.smtp);
      } catch {
        /* not JSON */
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const i = smtp.lastIndexOf(':');
  return { child, smtp: { host: smtp.slice(0, i), port: Number(smtp.slice(i + 1)) }, exited, kill };
}

/** A small plain message with a unique Message-ID. */
export function message(id: string, to: string): Buffer {
  return Buffer.from([`From: alice@partner.example`, `To: ${to}`, `Subject: cluster test`, `Message-ID: ${id}`, '', `body of ${id}`, ''].join('\r\n'));
}

/** The Message-ID header of a received message. */
export function messageId(data: Buffer): string | undefined {
  return /^Message-ID:\s*(\S+)/im.exec(data.toString('latin1'))?.[1];
}

/** The outcome of one SMTP transaction: the first reply that was not 250, or the 250 of DATA; `lost` if the connection failed. */
export type Outcome = { code: number; stage: string } | { lost: string };

/** One transaction on an open session (MAIL, RCPT, DATA); RSETs after a refusal so the session stays usable. */
export async function transaction(c: SmtpClient, to: string, id: string): Promise<Outcome> {
  try {
    for (const [stage, step] of [
      ['MAIL', () => c.mail('alice@partner.example')],
      ['RCPT', () => c.rcpt(to)],
      ['DATA', () => c.data(message(id, to))],
    ] as const) {
      const r = await step();
      if (r.code !== 250) {
        if (stage !== 'DATA') await c.rset();
        return { code: r.code, stage };
      }
    }
    return { code: 250, stage: 'DATA' };
  } catch (e) {
    c.close();
    return { lost: (e as Error).message };
  }
}

/** Opens an SMTP session to a node (plain, bounded timeouts); a failure to connect is `lost`. */
export async function session(node: Pick<Node, 'smtp'>): Promise<SmtpClient | { lost: string }> {
  try {
    return await SmtpClient.connect({ ...node.smtp, helo: 'client.test', tls: 'none', timeouts: { connect: 5000, command: 15_000, dataEnd: 15_000 } });
  } catch (e) {
    return { lost: (e as Error).message };
  }
}
