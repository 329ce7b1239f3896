import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { addressRdata, encodeHeader, encodeQuestion, encodeRR, FLAG, parseQuery, RCODE, TYPE } from '../../directory/dnswire.js';
import { selfSignedCertificate } from '../../directory/tls.js';
import { tempDir } from '../helpers.js';

/**
 * The resolver pebble's validation authority asks (RFC 1035 over UDP on 127.0.0.1, port 0):
 * A records from `names` (name → IPv4 address, changeable while it runs), an empty NOERROR for
 * other types of those names, NXDOMAIN for anything else.
 */
export async function startDns(t: Test, names: Map<string, string>): Promise<number> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => {
    let q;
    try {
      q = parseQuery(msg);
    } catch {
      return;
    }
    const name = q.qname.length > 1 ? labels(q.qname) : '';
    const ip = names.get(name);
    const answer = ip && q.qtype === TYPE.A ? [encodeRR(q.qname, TYPE.A, 0, addressRdata(ip).rdata)] : [];
    const head = encodeHeader({ id: q.id, flags: FLAG.QR | FLAG.AA | q.copyFlags, rcode: ip ? RCODE.NOERROR : RCODE.NXDOMAIN, qd: 1, an: answer.length, ns: 0, ar: 0 });
    socket.send(Buffer.concat([head, encodeQuestion(q.qname, q.qtype, q.qclass), ...answer]), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.teardown(() => socket.close());
  return socket.address().port;
}

/** An uncompressed wire name as lower-case text without the final dot. */
function labels(wire: Buffer): string {
  const out: string[] = [];
  for (let i = 0; wire[i]! > 0; i += wire[i]! + 1) out.push(wire.subarray(i + 1, i + 1 + wire[i]!).toString('latin1').toLowerCase());
  return out.join('.');
}

/** A port free at this moment: pebble takes its listening ports, and the HTTP face pebble validates on its port, from a config file. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

export interface Pebble {
  directoryUrl: string;
  /** Pebble's own HTTPS certificate (made here: the Debian package ships none), for acme.caFile. */
  caFile: string;
  caPem: string;
  /** The root of the chain pebble issues under (management interface, /roots/0). */
  root(): Promise<string>;
}

/**
 * Starts the Debian package's pebble (RFC 8555 test CA) with real validation: its validation
 * authority connects to 127.0.0.1-resolved names on `httpPort` (http-01) and `tlsPort`
 * (tls-alpn-01), asking the resolver on `dnsPort`. Resolves when it says its directory is up.
 */
export async function startPebble(t: Test, o: { httpPort: number; tlsPort: number; dnsPort: number; validitySec?: number }): Promise<Pebble> {
  const dir = tempDir(t, 'mailmesh-pebble-');
  const pair = await selfSignedCertificate(['localhost', '127.0.0.1']);
  const caFile = join(dir, 'cert.pem');
  writeFileSync(caFile, pair.cert);
  writeFileSync(join(dir, 'key.pem'), pair.key);
  const [listen, management] = [await freePort(), await freePort()];
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${listen}`, managementListenAddress: `127.0.0.1:${management}`, certificate: caFile, privateKey: join(dir, 'key.pem'),
      httpPort: o.httpPort, tlsPort: o.tlsPort, ocspResponderURL: '', externalAccountBindingRequired: false,
      ...(o.validitySec ? { certificateValidityPeriod: o.validitySec } : {}),
    },
  };
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify(config));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
  const child = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${o.dnsPort}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const read = (line: string) => {
      output += line + '\n';
      if (line.includes('ACME directory available at')) resolve();
    };
    createInterface({ input: child.stdout }).on('line', read);
    createInterface({ input: child.stderr }).on('line', read);
    child.on('exit', (code) => reject(new Error(`pebble exited ${code}: ${output}`)));
  });
  return {
    directoryUrl: `https://127.0.0.1:${listen}/dir`,
    caFile,
    caPem: pair.cert,
    async root() {
      const { request } = await import('node:https');
      return new Promise((resolve, reject) => {
        request(`https://127.0.0.1:${management}/roots/0`, { ca: pair.cert }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        }).on('error', reject).end();
      });
    },
  };
}
