import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { run } from '../helpers.js';

// The built CLI, as `npm start` runs it (npm test builds first).
export const MAIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
/**
 * Every run listens on ports the system picks (0) and reaches no fixed next hop the machine may
 * serve (by default the internal mail server on port 10025, the resolver on port 53): those go
 * to 127.0.0.1:1, where nothing listens (test/ports.test.ts checks both).
 */
export const QUIET = {
  MAILMESH_LOG__PRETTY: 'false', MAILMESH_HTTP__PORT: '0', MAILMESH_DNS__PORT: '0', MAILMESH_LDAP__PORT: '0', MAILMESH_SMTP__PORT: '0',
  MAILMESH_SMTP__INTERNAL_SERVER: '127.0.0.1:1', MAILMESH_FEDERATION__RESOLVERS: '127.0.0.1:1',
};

/** Runs the CLI (`main`: another build's, e.g. an older release's for upgrade fixtures). */
export function cli(cwd: string, args: string[], env: Record<string, string> = {}, main = MAIN, input?: string) {
  return run('node', [main, ...args], { cwd, env: { ...QUIET, ...env }, allowFail: true, input });
}

/** Starts `mailmesh serve`, resolves once it logs that it is serving (no sleeps); `configPorts`: the ports of its configuration file, not 0; `main`: another build's CLI. */
export async function startServe(t: Test, cwd: string, env: Record<string, string> = {}, o: { configPorts?: boolean; main?: string } = {}) {
  const quiet = Object.fromEntries(Object.entries(QUIET).filter(([k]) => !(o.configPorts && k.endsWith('__PORT'))));
  const child = spawn('node', [o.main ?? MAIN, 'serve'], { cwd, env: { ...process.env, ...quiet, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const ready = new Promise<{ http: string; smtp: string; dns: string; ldap: string }>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const l = JSON.parse(line) as Record<string, unknown>;
        lines.push(l);
        if (l.msg === 'mailmesh is serving') resolve(l.addresses as { http: string; smtp: string; dns: string; ldap: string });
      } catch {
        /* not JSON */
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, addresses: await ready, exited };
}
