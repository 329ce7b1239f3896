/* global process, Buffer, console, setTimeout */
/**
 * `npm run build && node bench/ldap-flood.mjs [dist/cli/main.js]`: starts `mailmesh serve` (memory
 * store, every port 0) and floods its LDAP face with 16.8 MB of subtree searches from a client
 * that never reads; prints the server's RSS and peak RSS (MB, from /proc) every second, and after
 * the client closed (docs/security/edges.md "Measured"). Linux only.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
const main = resolve(process.argv[2] ?? 'dist/cli/main.js');
const cwd = mkdtempSync(join(tmpdir(), 'mailmesh-flood-'));
const env = { ...process.env, MAILMESH_LOG__PRETTY: 'false', MAILMESH_HTTP__PORT: '0', MAILMESH_DNS__PORT: '0', MAILMESH_LDAP__PORT: '0', MAILMESH_SMTP__PORT: '0', MAILMESH_STORE__URL: 'memory:' };
const child = spawn('node', [main, 'serve'], { env, cwd, stdio: ['ignore', 'pipe', 'inherit'] });
const addresses = await new Promise((done) => createInterface({ input: child.stdout }).on('line', (l) => {
  try {
    const j = JSON.parse(l);
    if (j.msg === 'mailmesh is serving') done(j.addresses);
  } catch {
    /* not JSON */
  }
}));
const rss = () => {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return [/VmRSS:\s+(\d+)/, /VmHWM:\s+(\d+)/].map((r) => Math.round(Number(r.exec(status)[1]) / 1024));
};
const [host, port] = addresses.ldap.split(':');
// RFC 4511 §4.5.1: SearchRequest, base dc=mailmesh, subtree, (objectClass=*), all attributes.
const req = Buffer.from('3030020102632b040b64633d6d61696c6d6573680a01020a0100020100020100010100870b6f626a656374436c6173733000', 'hex');
console.log('idle RSS/peak MB', rss());
const s = net.connect(Number(port), host);
s.on('error', () => {});
await new Promise((r) => s.once('connect', r));
s.pause();
const batch = Buffer.concat(Array.from({ length: 1300 }, () => req));
for (let sent = 0; sent < 16.8e6; sent += batch.length) s.write(batch);
for (let i = 0; i < 10; i++) {
  await new Promise((r) => setTimeout(r, 1000));
  console.log(`t+${i + 1}s RSS/peak MB`, rss());
}
s.destroy();
await new Promise((r) => setTimeout(r, 3000));
console.log('3 s after close RSS/peak MB', rss());
child.kill('SIGKILL');
rmSync(cwd, { recursive: true, force: true });
process.exit(0);
