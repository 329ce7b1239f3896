// Makes fuzz/fixtures/domain.json and the seed corpora fuzz/corpus/<target>/ from real
// protocol samples: kdig queries, ldapsearch PDUs, swaks sessions (both directions), openssl
// cms/smime output, gpg exports, and our own encoders. Run once; the output is committed:
//   npx tsc -p tsconfig.fuzz.json && node .fuzz-build/fuzz/make-seeds.js
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { Directory } from '../directory/directory.js';
import { parseDomain } from '../directory/domain.js';
import { generateDomainKeys } from '../directory/keys.js';
import { encodeResult, readHeader } from '../directory/ldap/ber.js';
import { MemoryStore } from '../directory/store/memory.js';
import { sealEnvelope } from '../gateway/tunnel/cms/seal.js';
import { signContent } from '../gateway/tunnel/cms/signed.js';
import { encryptTunnel, readTunnel } from '../gateway/tunnel/tunnel.js';
import { sealMessage, WebmailKeys } from '../gateway/webmail/crypto.js';
import { repoRoot, type Fixtures } from './fixtures.js';

const root = repoRoot();
const tmp = mkdtempSync(join(tmpdir(), 'mailmesh-seeds-'));
const seeds: Record<string, Buffer[]> = {};
const add = (target: string, ...inputs: (Buffer | string)[]) => (seeds[target] ??= []).push(...inputs.map((i) => Buffer.from(i)));

function run(cmd: string, args: string[], input?: Buffer | string, env: Record<string, string> = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 24, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message} ${stderr.toString()}`)) : resolve(stdout));
    if (input !== undefined) child.stdin!.end(input);
  });
}

// --- fixtures: a domain with keys, its signed record, a WebMail key ---
const now = new Date();
const domain = parseDomain('fuzz.example');
const own = { domain, ...(await generateDomainKeys(domain, { openpgp: 'curve25519', validDays: 3650 }, now)) };
const directory = await Directory.open(new MemoryStore(), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 3650 }, clock: () => now });
const record = await directory.addDomain('fuzz.example');
const webmailKey = randomBytes(32);
const fx: Fixtures = { now: now.toISOString(), own, signed: record.signed!, webmailKey: webmailKey.toString('base64') };
mkdirSync(join(root, 'fuzz', 'fixtures'), { recursive: true });
writeFileSync(join(root, 'fuzz', 'fixtures', 'domain.json'), JSON.stringify(fx, null, 2) + '\n');

// --- DNS: what kdig sends, over UDP and TCP ---
{
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const port = udp.address().port;
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        add('dns-wire', msg);
        add('dns-handler', msg);
        s.end();
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
  udp.on('message', (msg, rinfo) => {
    add('dns-wire', msg);
    add('dns-handler', msg);
    const answer = Buffer.from(msg.subarray(0, 12));
    answer[2]! |= 0x80;
    udp.send(answer, rinfo.port, rinfo.address);
  });
  const q = (args: string[]) => run('kdig', ['@127.0.0.1', '-p', String(port), '+time=1', '+retry=0', ...args]).catch(() => Buffer.alloc(0));
  await q(['fuzz.example.dir.mailmesh.test', 'TXT']);
  await q(['+noedns', 'dir.mailmesh.test', 'SOA']);
  await q(['+dnssec', '+nsid', 'c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.fuzz.example.dir.mailmesh.test', 'OPENPGPKEY']);
  await q(['+cookie', '+bufsize=4096', '*._smimecert.fuzz.example.dir.mailmesh.test', 'SMIMEA']);
  await q(['+tcp', 'dir.mailmesh.test', 'AXFR']);
  await q(['+tcp', 'dir.mailmesh.test', 'ANY']);
  await q(['DIR.MailMesh.TEST', 'NS', '+edns=1']);
  await q(['-x', '127.0.0.1']);
  udp.close();
  tcp.close();
}

// --- LDAP: what ldapsearch sends (bind, search, unbind), answered just enough ---
{
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    const stream: Buffer[] = [];
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const h = readHeader(buf);
        if (typeof h === 'string' || buf.length < h.contentStart + h.length) break;
        const msg = buf.subarray(0, h.contentStart + h.length);
        buf = buf.subarray(msg.length);
        stream.push(msg);
        const idHeader = readHeader(msg, h.contentStart) as { contentStart: number; length: number };
        const id = msg.subarray(idHeader.contentStart, idHeader.contentStart + idHeader.length).reduce((n, b) => n * 256 + b, 0);
        const op = msg[idHeader.contentStart + idHeader.length]!;
        if (op === 0x60) s.write(encodeResult(id, 0x61, 0, ''));
        if (op === 0x63) {
          // The Filter: the 7th element of the SearchRequest.
          const opHeader = readHeader(msg, idHeader.contentStart + idHeader.length) as { contentStart: number; length: number };
          let at = opHeader.contentStart;
          for (let i = 0; i < 6; i++) {
            const e = readHeader(msg, at) as { contentStart: number; length: number };
            at = e.contentStart + e.length;
          }
          const f = readHeader(msg, at) as { contentStart: number; length: number };
          add('ldap-filter', msg.subarray(at, f.contentStart + f.length));
          s.write(encodeResult(id, 0x65, 0, ''));
        }
      }
    });
    s.on('close', () => {
      const all = Buffer.concat(stream);
      add('ldap-ber', all);
      add('ldap-request', all);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `ldap://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const ls = (args: string[]) => run('ldapsearch', ['-x', '-H', url, '-o', 'nettimeout=2', ...args]).catch(() => Buffer.alloc(0));
  await ls(['-b', 'dc=mailmesh', '(mail=*@fuzz.example)']);
  await ls(['-b', '', '-s', 'base', '(objectClass=*)', 'namingContexts']);
  await ls(['-b', 'dc=mailmesh', '-z', '5', '(&(objectClass=pgpKeyInfo)(|(dc=fuzz.example)(cn=Fuzz*))(!(pgpCertID=0)))', 'pgpKey', 'userCertificate;binary']);
  await ls(['-b', 'dc=mailmesh', '(|(mail~=bob@fuzz.example)(cn>=a)(cn<=z)(dc:caseExactMatch:=fuzz.example)(mail=*fuzz*example*))']);
  await ls(['-D', 'cn=admin,dc=mailmesh', '-w', 'secret', '-b', 'dc=mailmesh', '-s', 'one', '(dc=*)']);
  server.close();
}

// --- SMTP: swaks sessions through a recording proxy to a sink (client bytes and server bytes) ---
{
  const sink = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS'], logger: false, onData: (stream, _s, cb) => (stream.resume(), stream.on('end', () => cb())) });
  const sinkPort = await new Promise<number>((r) => sink.listen(0, '127.0.0.1', () => r((sink.server.address() as net.AddressInfo).port)));
  const proxy = net.createServer((c) => {
    const up = net.connect(sinkPort, '127.0.0.1');
    const sent: Buffer[] = [];
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => (sent.push(d), up.write(d)));
    up.on('data', (d: Buffer) => (got.push(d), c.write(d)));
    c.on('end', () => up.end());
    up.on('end', () => c.end());
    c.on('close', () => {
      add('smtp-command', Buffer.concat(sent));
      add('smtp-reply', Buffer.concat([Buffer.from([4]), ...got]));
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const port = String((proxy.address() as net.AddressInfo).port);
  const sw = (args: string[], input?: Buffer) => run('swaks', ['--server', '127.0.0.1', '--port', port, '--from', 'alice@partner.test', '--to', 'bob@fuzz.example', ...args], input);
  await sw([]);
  await sw(['--pipeline', '--to', 'bob@fuzz.example,carol@fuzz.example', '--header', 'Subject: pipelined']);
  await sw(['--attach', '-', '--attach-type', 'application/octet-stream'], randomBytes(600));
  await sw(['--quit-after', 'RCPT', '--helo', 'client.partner.test']);
  proxy.close();
  sink.close();
}

// --- MIME, tunnel messages, CMS, OpenPGP keys ---
const message = Buffer.from('From: Alice <alice@partner.test>\r\nTo: bob@fuzz.example\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n' +
  'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n' +
  'Gr=C3=BC=C3=9Fe =\r\nsoft break\r\n--b1\r\nContent-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
  randomBytes(120).toString('base64').replace(/.{1,76}/g, '$&\r\n') + '--b1--\r\nepilogue\r\n');
const peer = { domain, keys: own.keys };
const pgp = await encryptTunnel('pgp-mime', readTunnel(message), own, peer, { now });
const smime = await encryptTunnel('smime', readTunnel(message), own, peer, { now });
writeFileSync(join(tmp, 'leaf.pem'), own.keys.smime!.chain[0]!);
writeFileSync(join(tmp, 'key.pem'), own.secrets.smime!.keyPkcs8Pem);
const opensslSmime = await run('openssl', ['smime', '-encrypt', '-aes256', join(tmp, 'leaf.pem')], message);
const armoredMessage = await run('gpg', ['--homedir', tmp, '--batch', '--armor', '--symmetric', '--passphrase', 'x', '--pinentry-mode', 'loopback'], 'hello');
const inline = Buffer.concat([Buffer.from('From: a@partner.test\r\nTo: bob@fuzz.example\r\nContent-Type: text/plain\r\n\r\n'), armoredMessage]);
add('mime', message, pgp, smime, opensslSmime, inline);
add('classify', message, pgp, smime, opensslSmime, inline);

const gcm = await run('openssl', ['cms', '-encrypt', '-aes-256-gcm', '-outform', 'DER', '-stream', '-recip', join(tmp, 'leaf.pem')], message.subarray(0, 300));
const cbc = await run('openssl', ['cms', '-encrypt', '-aes128', '-outform', 'DER', '-recip', join(tmp, 'leaf.pem')], message.subarray(0, 300));
add('cms-envelope', await sealEnvelope(message.subarray(0, 300), own.keys.smime!.chain[0]!), gcm, cbc);
writeFileSync(join(tmp, 'chain.pem'), own.keys.smime!.chain[1]!);
const opensslSigned = await run('openssl', ['cms', '-sign', '-nodetach', '-outform', 'DER', '-signer', join(tmp, 'leaf.pem'), '-inkey', join(tmp, 'key.pem'), '-certfile', join(tmp, 'chain.pem')], message.subarray(0, 300));
add('cms-signed', await signContent(message.subarray(0, 300), own.keys.smime!.chain, own.secrets.smime!.keyPkcs8Pem, now), opensslSigned);

await run('gpg', ['--homedir', tmp, '--batch', '--import'], own.keys.openpgp!.armored);
const binaryKey = await run('gpg', ['--homedir', tmp, '--batch', '--export', own.keys.openpgp!.fingerprint]);
await run('gpg', ['--homedir', tmp, '--batch', '--passphrase', '', '--quick-gen-key', 'Domain key <domain-key@fuzz.example>', 'rsa2048', 'default', '10y']);
const gpgKey = await run('gpg', ['--homedir', tmp, '--batch', '--export', 'domain-key@fuzz.example']);
add('openpgp-key', own.keys.openpgp!.armored, binaryKey, gpgKey);

add('signed-record', JSON.stringify(fx.signed), fx.signed.payload);

const store = new MemoryStore();
const master = randomBytes(32);
await WebmailKeys.restore(store, master, [{ version: 1, key: webmailKey }]);
const keys = await WebmailKeys.open(store, master);
const expires = Math.floor(now.getTime() / 1000) + 86400 * 365;
for (const body of [message.subarray(0, 200), Buffer.alloc(0)]) {
  const s = await sealMessage(keys, body, { recipient: 'bob@fuzz.example', messageId: '<1@partner.test>', expires });
  add('webmail-form', new URLSearchParams({ recipient: s.recipient, messageId: s.messageId, expires: String(s.expires), data: s.data, csrf: 'abc', password: 'pw' }).toString());
}

for (const [target, inputs] of Object.entries(seeds)) {
  const dir = join(root, 'fuzz', 'corpus', target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  inputs.forEach((input, i) => writeFileSync(join(dir, `seed-${String(i).padStart(2, '0')}`), input));
  process.stdout.write(`${target}: ${inputs.length} seeds, ${inputs.reduce((n, b) => n + b.length, 0)} bytes\n`);
}
rmSync(tmp, { recursive: true, force: true });
process.exit(0);
