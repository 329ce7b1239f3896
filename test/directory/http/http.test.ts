import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { pemToDer } from '../../../directory/smime.js';
import { wkdHash } from '../../../directory/wkd.js';
import { gpgHome, run, seeded, tempDir } from '../../helpers.js';
import { get, memoryDirectory, startHttp } from './helpers.js';

// One directory, two domains (one removed again), one server for the whole file: key generation is the slow part.
const directory = await memoryDirectory();
const D = 'demo.mailmesh.test';
const demo = await directory.addDomain(D);
const gone = await directory.addDomain('gone.example');
await directory.removeDomain('gone.example');
const FPR = demo.keys.openpgp!.fingerprint;
const KEYID = demo.keys.openpgp!.keyId;
const { base, port } = await startHttp(t, directory);

/** A fresh GnuPG home with a dirmngr of its own (stopped by gpgHome's teardown). */
async function gnupg(t: Test) {
  const h = gpgHome(t);
  await run('gpgconf', ['--launch', 'dirmngr'], { env: { GNUPGHOME: h.home } });
  const gpg = (...args: string[]) => h.gpg(args);
  const listed = async () => (await gpg('--with-colons', '--list-keys')).stdout.toString().split('\n');
  return { home: h.home, gpg, listed };
}

const uidLines = (lines: string[]) => lines.filter((l) => l.startsWith('uid:'));
const errorCode = (r: { json: () => unknown }) => (r.json() as { error: { code: string } }).error.code;

t.test('REST: sync pages through changes, tombstones included', async (t) => {
  const all = await get(`${base}/v1/domains?since=0`);
  t.equal(all.status, 200);
  const page = all.json() as { serial: number; records: { domain: string; serial: number; status: string }[]; next: number | null };
  t.equal(page.serial, await directory.store.serial(), "the store's current serial");
  t.same(page.records.map((r) => [r.domain, r.status]), [[D, 'active'], ['gone.example', 'deleted']], 'ascending, with the tombstone');
  t.equal(page.next, null, 'one page holds everything');

  const first = (await get(`${base}/v1/domains?since=0&limit=1`)).json() as typeof page;
  t.same(first.records.map((r) => r.domain), [D]);
  t.equal(first.next, demo.serial);
  const second = (await get(`${base}/v1/domains?since=${first.next}&limit=1`)).json() as typeof page;
  t.same(second.records.map((r) => [r.domain, r.serial]), [['gone.example', page.serial]]);
  t.equal(second.next, null);
  const none = (await get(`${base}/v1/domains?since=${page.serial}`)).json() as typeof page;
  t.same(none.records, [], 'nothing after the current serial');
  t.ok(gone.serial < page.serial, 'the removal has a serial of its own');

  for (const q of ['since=-1', 'since=x', 'limit=0', 'limit=1001', 'limit=2.5']) {
    const r = await get(`${base}/v1/domains?${q}`);
    t.equal(r.status, 400, q);
    t.equal(errorCode(r), 'BAD_REQUEST', q);
  }
});

t.test('REST: the OpenPGP key, binary by default and armored on request', async (t) => {
  const bin = await get(`${base}/v1/domains/${D}/openpgp`);
  t.equal(bin.status, 200);
  t.equal(bin.headers['content-type'], 'application/octet-stream');
  t.equal(bin.headers.vary, 'Accept');
  const key = await openpgp.readKey({ binaryKey: bin.body });
  t.equal(key.getFingerprint().toUpperCase(), FPR);
  for (const accept of ['text/plain', 'application/pgp-keys']) {
    const r = await get(`${base}/v1/domains/${D}/openpgp`, { headers: { accept } });
    t.equal(r.status, 200);
    t.match(r.headers['content-type'], accept);
    t.match(r.text, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    t.equal((await openpgp.readKey({ armoredKey: r.text })).getFingerprint().toUpperCase(), FPR, accept);
  }
  const h = await gnupg(t);
  const file = join(h.home, 'key.bin');
  writeFileSync(file, bin.body);
  await h.gpg('--import', file);
  t.ok((await h.listed()).some((l) => l.startsWith(`fpr:::::::::${FPR}:`)), 'gpg imports the binary download');
});

t.test('REST: the S/MIME certificate, DER leaf or PEM chain', async (t) => {
  const dir = tempDir(t);
  const der = await get(`${base}/v1/domains/${D}/smime`);
  t.equal(der.status, 200);
  t.equal(der.headers['content-type'], 'application/pkix-cert');
  t.ok(der.body.equals(pemToDer(demo.keys.smime!.chain[0]!)));
  writeFileSync(join(dir, 'leaf.der'), der.body);
  const { stdout } = await run('openssl', ['x509', '-inform', 'DER', '-in', join(dir, 'leaf.der'), '-noout', '-ext', 'subjectAltName']);
  t.match(stdout.toString(), `email:domainkey@${D}`, 'openssl reads the DER certificate');

  for (const accept of ['application/pem-certificate-chain', 'application/x-pem-file', 'text/plain']) {
    const pem = await get(`${base}/v1/domains/${D}/smime`, { headers: { accept } });
    t.equal(pem.status, 200);
    t.match(pem.headers['content-type'], accept);
    const blocks = pem.text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
    t.equal(blocks.length, 2, `${accept}: leaf and domain CA`);
    writeFileSync(join(dir, 'leaf.pem'), blocks[0]!);
    writeFileSync(join(dir, 'ca.pem'), blocks[1]!);
    const v = await run('openssl', ['verify', '-purpose', 'smimeencrypt', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')]);
    t.match(v.stdout.toString(), /leaf\.pem: OK/, `${accept}: the chain verifies for S/MIME encryption`);
  }
});

t.test('WKD: advanced and direct methods, HEAD, policy, one user ID', async (t) => {
  const hash = wkdHash('domainkey');
  const h = await gnupg(t);
  const urls: { url: string; headers: Record<string, string> }[] = [
    { url: `${base}/.well-known/openpgpkey/${D}/hu/${hash}?l=domainkey`, headers: {} },
    { url: `${base}/.well-known/openpgpkey/hu/${hash}?l=DomainKey`, headers: { host: `${D}:443` } },
  ];
  for (const { url, headers } of urls) {
    const r = await get(url, { headers });
    t.equal(r.status, 200, url);
    t.equal(r.headers['content-type'], 'application/octet-stream');
    t.equal(r.headers['access-control-allow-origin'], '*', 'CORS on key lookups');
    const file = join(h.home, 'wkd.bin');
    writeFileSync(file, r.body);
    await h.gpg('--import', file);
    const head = await get(url, { method: 'HEAD', headers });
    t.equal(head.status, 200, 'HEAD');
    t.equal(head.body.length, 0, 'HEAD has no body');
    t.equal(Number(head.headers['content-length']), r.body.length, 'HEAD tells the length of the GET body');
  }
  const lines = await h.listed();
  t.same(uidLines(lines).map((l) => l.split(':')[9]), [`${D} domain key <domainkey@${D}>`], 'gpg holds the key with exactly one user ID');
  t.ok(lines.some((l) => l.startsWith(`fpr:::::::::${FPR}:`)));

  for (const [url, headers] of [[`${base}/.well-known/openpgpkey/${D}/policy`, {}], [`${base}/.well-known/openpgpkey/policy`, { host: D }]] as const) {
    const p = await get(url, { headers });
    t.equal(p.status, 200, url);
    t.match(p.headers['content-type'], 'text/plain');
    t.ok(p.text.split('\n').every((l) => l === '' || l.startsWith('#')), 'comment lines only: no policy flag');
    t.equal((await get(url, { method: 'HEAD', headers })).status, 200);
  }

  const cases: [string, Record<string, string>, number, string][] = [
    [`/.well-known/openpgpkey/${D}/hu/${wkdHash('alice')}`, {}, 404, 'NOT_FOUND'],
    [`/.well-known/openpgpkey/other.example/hu/${hash}`, {}, 404, 'DOMAIN_NOT_FOUND'],
    [`/.well-known/openpgpkey/gone.example/hu/${hash}`, {}, 404, 'DOMAIN_NOT_FOUND'],
    [`/.well-known/openpgpkey/bad_domain!/hu/${hash}`, {}, 400, 'DOMAIN_INVALID'],
    [`/.well-known/openpgpkey/${D}/hu/${hash.toUpperCase()}`, {}, 400, 'BAD_REQUEST'],
    [`/.well-known/openpgpkey/${D}/hu/${hash}x`, {}, 400, 'BAD_REQUEST'],
    [`/.well-known/openpgpkey/${D}/hu/abc`, {}, 400, 'BAD_REQUEST'],
    [`/.well-known/openpgpkey/hu/${hash}`, {}, 400, 'DOMAIN_INVALID'], // Host: 127.0.0.1:port
    [`/.well-known/openpgpkey/hu/${hash}`, { host: 'other.example' }, 404, 'DOMAIN_NOT_FOUND'],
    [`/.well-known/openpgpkey/policy`, {}, 400, 'DOMAIN_INVALID'],
    [`/.well-known/openpgpkey/nope.example/policy`, {}, 404, 'DOMAIN_NOT_FOUND'],
  ];
  for (const [path, headers, status, code] of cases) {
    const r = await get(base + path, { headers });
    t.equal(r.status, status, path);
    t.equal(errorCode(r), code, path);
    t.equal((await get(base + path, { method: 'HEAD', headers })).status, status, `HEAD ${path}`);
  }
});

t.test('WKD: answers are served once serialized, and follow a new key of the domain', async (t) => {
  const d = await memoryDirectory();
  const { base } = await startHttp(t, d);
  const url = `${base}/.well-known/openpgpkey/again.example/hu/${wkdHash('domainkey')}`;
  const fingerprintAt = async () => {
    const r = await get(url);
    t.equal(r.status, 200);
    return (await openpgp.readKey({ binaryKey: r.body })).getFingerprint().toUpperCase();
  };
  const first = await d.addDomain('again.example');
  t.equal(await fingerprintAt(), first.keys.openpgp!.fingerprint);
  t.equal(await fingerprintAt(), first.keys.openpgp!.fingerprint, 'the second answer (from the cache) is the same key');
  await d.removeDomain('again.example');
  t.equal(errorCode(await get(url)), 'DOMAIN_NOT_FOUND', 'a removed domain is not answered from the cache');
  const second = await d.addDomain('again.example');
  t.not(second.keys.openpgp!.fingerprint, first.keys.openpgp!.fingerprint);
  t.equal(await fingerprintAt(), second.keys.openpgp!.fingerprint, 'the new key, not the cached old one');
  t.equal((await get(`${base}/.well-known/openpgpkey/again.example/hu/${wkdHash('alice')}`)).status, 404, 'no answer for other hashes');
});

t.test('HKP: gpg --recv-keys and --search-keys against the directory', async (t) => {
  const h = await gnupg(t);
  const ks = `hkp://127.0.0.1:${port}`;
  await h.gpg('--keyserver', ks, '--recv-keys', FPR);
  const lines = await h.listed();
  t.ok(lines.some((l) => l.startsWith(`fpr:::::::::${FPR}:`)), 'gpg --recv-keys <fpr> imported the key');
  t.same(uidLines(lines).map((l) => l.split(':')[9]), [`${D} domain key <domainkey@${D}>`]);

  // In batch mode gpg prints the parsed index, then gives up asking which key to import (exit 2).
  const search = await run('gpg', ['--batch', '--keyserver', ks, '--search-keys', `domainkey@${D}`], { env: { GNUPGHOME: h.home }, allowFail: true });
  t.match(search.stderr, /batchmode/, 'gpg stopped only at the prompt');
  const listing = search.stdout.toString();
  const created = demo.keys.openpgp!.created.slice(0, 10);
  const expires = demo.keys.openpgp!.expires!.slice(0, 10);
  t.match(listing, `(1)\t${D} domain key <domainkey@${D}>`, 'gpg lists the user ID');
  t.match(listing, `255 bit EDDSA key ${KEYID}, created: ${created}, expires: ${expires}`, 'and the key it parsed from the index');
  t.notMatch(listing, /\(2\)/, 'one key');
});

t.test('HKP: index format, get, search modes and errors', async (t) => {
  const hkp = (q: string) => get(`${base}/pks/lookup?${q}`);
  const idx = await hkp(`op=index&options=mr&search=${encodeURIComponent(`domainkey@${D}`)}`);
  t.equal(idx.status, 200);
  const lines = idx.text.trim().split('\n');
  t.equal(lines[0], 'info:1:1');
  const pub = lines[1]!.split(':');
  t.same(pub.slice(0, 3), ['pub', FPR, '22'], 'fingerprint and algorithm 22 (EdDSA, RFC 9580 §9.1)');
  t.equal(pub[3], '255');
  t.equal(pub[4], String(Math.floor(Date.parse(demo.keys.openpgp!.created) / 1000)));
  t.equal(pub[5], String(Math.floor(Date.parse(demo.keys.openpgp!.expires!) / 1000)));
  t.equal(lines[2]!.split(':')[1], `${D} domain key <domainkey@${D}>`);
  t.equal((await hkp(`op=vindex&options=mr&search=0x${FPR}`)).text, idx.text, 'vindex is index; by fingerprint');
  t.equal((await hkp(`op=index&search=0x${KEYID.toLowerCase()}`)).text, idx.text, 'by long key ID, without mr');
  t.equal((await hkp(`op=index&search=MAILMESH.test`)).text, idx.text, 'substring, case-insensitive');
  t.equal((await hkp(`op=index&exact=on&search=${encodeURIComponent(`<domainkey@${D}>`)}`)).text, idx.text);

  const got = await hkp(`op=get&options=mr&search=0x${FPR}`);
  t.equal(got.status, 200);
  t.match(got.headers['content-type'], 'application/pgp-keys');
  t.equal((await openpgp.readKey({ armoredKey: got.text })).getFingerprint().toUpperCase(), FPR);
  t.match((await hkp(`op=get&search=0x${FPR}`)).headers['content-type'], 'text/plain');

  const cases: [string, number, string][] = [
    [`op=get&search=0x${'0'.repeat(40)}`, 404, 'NOT_FOUND'],
    [`op=index&exact=on&search=mailmesh`, 404, 'NOT_FOUND'],
    [`op=get&exact=on&search=${encodeURIComponent('alice@' + D)}`, 404, 'NOT_FOUND'],
    [`op=get&search=gone.example`, 404, 'NOT_FOUND'],
    [`op=get&search=0x1234ABCD`, 400, 'BAD_REQUEST'],
    [`op=get`, 400, 'BAD_REQUEST'],
    [`op=stats&search=x`, 400, 'BAD_REQUEST'],
    [`op=get&search=${'x'.repeat(300)}`, 400, 'BAD_REQUEST'],
    [`op=get&search=${encodeURIComponent('<no address>')}`, 400, 'ADDRESS_INVALID'],
  ];
  for (const [q, status, code] of cases) {
    const r = await hkp(q);
    t.equal(r.status, status, q);
    t.equal(errorCode(r), code, q);
    t.ok((r.json() as { error: { message: string } }).error.message.length > 5, 'a clear message');
  }
});

t.test('VKS: by fingerprint, key ID and address', async (t) => {
  for (const path of [`by-fingerprint/${FPR}`, `by-fingerprint/${FPR.toLowerCase()}`, `by-keyid/${KEYID}`, `by-email/${encodeURIComponent(`DomainKey@${D}`)}`]) {
    const r = await get(`${base}/vks/v1/${path}`);
    t.equal(r.status, 200, path);
    t.equal(r.headers['content-type'], 'application/pgp-keys');
    t.equal(r.headers['access-control-allow-origin'], '*');
    t.equal((await openpgp.readKey({ armoredKey: r.text })).getFingerprint().toUpperCase(), FPR, path);
  }
  const cases: [string, number, string][] = [
    [`by-fingerprint/${'A'.repeat(40)}`, 404, 'NOT_FOUND'],
    [`by-keyid/${'A'.repeat(16)}`, 404, 'NOT_FOUND'],
    [`by-email/alice@${D}`, 404, 'NOT_FOUND'],
    [`by-email/domainkey@other.example`, 404, 'NOT_FOUND'],
    [`by-fingerprint/${FPR.slice(1)}`, 400, 'BAD_REQUEST'],
    [`by-fingerprint/${'G'.repeat(40)}`, 400, 'BAD_REQUEST'],
    [`by-keyid/${KEYID}00`, 400, 'BAD_REQUEST'],
    [`by-email/not-an-address`, 400, 'ADDRESS_INVALID'],
    [`by-email/a@b@c`, 400, 'ADDRESS_INVALID'],
  ];
  for (const [path, status, code] of cases) {
    const r = await get(`${base}/vks/v1/${path}`);
    t.equal(r.status, status, path);
    t.equal(errorCode(r), code, path);
  }
});

t.test('malformed requests get JSON errors and the server stays up', async (t) => {
  const cases: [string, string, number, string, Record<string, string>?, string?][] = [
    ['GET', '/v1/domains/not_a_domain!', 400, 'DOMAIN_INVALID'],
    ['GET', `/v1/domains/${'a'.repeat(300)}.example`, 400, 'BAD_REQUEST'],
    ['GET', '/v1/domains/%E0%A4%A', 400, 'BAD_REQUEST'],
    ['GET', '/v1/domains/nowhere.example/openpgp', 404, 'DOMAIN_NOT_FOUND'],
    ['GET', '/v1/domains/gone.example/smime', 404, 'DOMAIN_NOT_FOUND'],
    ['GET', '/nothing/here', 404, 'NOT_FOUND'],
    // Leave exists (docs/federation.md); without federation wired in it is disabled.
    ['DELETE', `/v1/domains/${D}`, 403, 'FEDERATION_DISABLED'],
    ['POST', '/v1/domains', 413, 'BODY_TOO_LARGE', { 'content-type': 'application/json' }, JSON.stringify({ x: 'y'.repeat(300 * 1024) })],
    ['POST', '/v1/domains', 400, 'BAD_REQUEST', { 'content-type': 'application/json' }, '{"broken'],
    ['POST', '/pks/add', 404, 'NOT_FOUND', { 'content-type': 'application/x-www-form-urlencoded' }, 'keytext=x'],
  ];
  for (const [method, path, status, code, headers, body] of cases) {
    const r = await get(base + path, { method, headers, body });
    t.equal(r.status, status, `${method} ${path.slice(0, 60)}`);
    t.match(r.headers['content-type'], 'application/json');
    t.equal(errorCode(r), code, `${method} ${path.slice(0, 60)}`);
    if (method === 'GET' && status === 404) t.equal(r.headers['access-control-allow-origin'], '*', 'CORS on a 404 as well');
  }
  const rnd = seeded(99);
  const alphabet = 'aZ09.-_@%/?=&:<>~ü';
  const prefixes = ['/v1/domains/', '/.well-known/openpgpkey/', '/pks/lookup?op=get&search=', '/vks/v1/by-email/', `/v1/domains?since=`];
  for (let i = 0; i < 300; i++) {
    const junk = Array.from({ length: Math.floor(rnd() * 30) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
    const path = prefixes[i % prefixes.length] + encodeURI(junk).replace(/%25/g, '%');
    const r = await get(base + path);
    if (r.status >= 500) t.fail(`${path} → ${r.status} ${r.text}`);
    if (r.status >= 400 && typeof (r.json() as { error?: { code?: string } }).error?.code !== 'string') t.fail(`${path}: no JSON error`);
  }
  t.equal((await get(`${base}/healthz`)).status, 200, 'still serving');
});

t.test('rate limit: 429 RATE_LIMITED over the limit, /healthz exempt', async (t) => {
  const limited = await startHttp(t, directory, { rateLimit: { max: 3, windowSec: 60 } });
  for (let i = 0; i < 3; i++) t.equal((await get(`${limited.base}/v1/domains/${D}`)).status, 200);
  const r = await get(`${limited.base}/v1/domains/${D}`);
  t.equal(r.status, 429);
  t.equal(errorCode(r), 'RATE_LIMITED');
  t.ok(Number(r.headers['retry-after']) > 0, 'Retry-After');
  t.equal(r.headers['access-control-allow-origin'], '*', 'a web page can read the 429 too');
  t.equal((await get(`${limited.base}/healthz`)).status, 200, 'health checks are not limited');
  const off = await startHttp(t, directory, { rateLimit: { max: 0, windowSec: 60 } });
  for (let i = 0; i < 5; i++) t.equal((await get(`${off.base}/v1/domains/${D}`)).status, 200, 'max 0 is off');
});

t.test('HTTPS with a self-signed certificate', async (t) => {
  const tls = await startHttp(t, directory, { tls: { selfSigned: true } });
  t.match(tls.base, /^https:/);
  const r = await get(`${tls.base}/v1/domains/${D}`);
  t.equal(r.status, 200);
  t.equal((r.json() as { domain: string }).domain, D);
  const curl = await run('curl', ['-sk', '-w', '\n%{http_code} %{scheme}', `${tls.base}/.well-known/openpgpkey/${D}/policy`]);
  t.match(curl.stdout.toString(), /200 HTTPS$/, 'curl -k fetches over TLS');
  const strict = await run('curl', ['-s', '-o', '/dev/null', `${tls.base}/healthz`], { allowFail: true });
  t.equal(strict.code, 60, 'without -k, curl refuses the self-signed certificate (exit 60)');
  const certs = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${tls.port} </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`]);
  t.match(certs.stdout.toString(), /IP Address:127\.0\.0\.1/, 'the certificate names the loopback address');
});

t.test('HTTPS with configured certificate files; a half configuration is refused', async (t) => {
  const dir = tempDir(t);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  const tls = await startHttp(t, directory, { tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } });
  const { stdout } = await run('curl', ['-sk', `${tls.base}/healthz`]);
  t.match(stdout.toString(), /"status":"ok"/);
  const subject = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${tls.port} </dev/null 2>/dev/null | openssl x509 -noout -subject`]);
  t.match(subject.stdout.toString(), /CN\s*=\s*127\.0\.0\.1/, 'the configured certificate is served');
  await t.rejects(startHttp(t, directory, { tls: { cert: join(dir, 'cert.pem') } }), { code: 'CONFIG_INVALID' });
  await t.rejects(startHttp(t, directory, { tls: { cert: join(dir, 'nope.pem'), key: join(dir, 'key.pem') } }), { code: 'CONFIG_INVALID' });
});
