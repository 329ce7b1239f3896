import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { caKeyId, readCertificates } from '../../../directory/smime.js';
import { wkdHash } from '../../../directory/wkd.js';
import { gpgHome, run, tempDir } from '../../helpers.js';
import { announceForTest } from '../announced.js';
import { get, memoryDirectory, startHttp } from './helpers.js';

// A domain in a roll (docs/lifecycle.md "Roll"): every key-server face of the HTTP face publishes
// the announced next key beside the current one, and /crl (and /crl/{caKeyId}) serves the domain CA's CRL.
const directory = await memoryDirectory();
const D = 'rolling.example';
const plain = await directory.addDomain('plain.example');
await directory.addDomain(D);
const { record, crlDer, revokedSerial } = await announceForTest(directory, D);
const CUR = record.keys.openpgp!.fingerprint;
const NEXT = record.next!.openpgp!.fingerprint;
const { base, port } = await startHttp(t, directory);

const errorCode = (r: { json: () => unknown }) => (r.json() as { error: { code: string } }).error.code;
const fingerprints = async (armoredKeys: string) => (await openpgp.readKeys({ armoredKeys })).map((k) => k.getFingerprint().toUpperCase());

async function gnupg(t: Test) {
  const h = gpgHome(t);
  await run('gpgconf', ['--launch', 'dirmngr'], { env: { GNUPGHOME: h.home } });
  const fprs = async () =>
    (await h.gpg(['--with-colons', '--list-keys'])).stdout.toString().split('\n').filter((l) => l.startsWith('fpr:')).map((l) => l.split(':')[9]);
  return { ...h, fprs };
}

t.test('REST: the record carries next, rollover and crls', async (t) => {
  const r = await get(`${base}/v1/domains/${D}`);
  t.equal(r.status, 200);
  const body = r.json() as typeof record;
  t.equal(body.next?.openpgp?.fingerprint, NEXT);
  t.equal(body.next?.smime?.fingerprint, record.next!.smime!.fingerprint);
  t.same(body.rollover, record.rollover);
  t.same(body.crls, [crlDer.toString('base64')]);
  t.equal(body.keys.openpgp?.fingerprint, CUR, 'the current key stays current');
});

t.test('WKD: the current key, then the next one; gpg imports both', async (t) => {
  const h = await gnupg(t);
  const hash = wkdHash('domainkey');
  for (const [url, headers] of [[`${base}/.well-known/openpgpkey/${D}/hu/${hash}?l=domainkey`, {}], [`${base}/.well-known/openpgpkey/hu/${hash}`, { host: D }]] as const) {
    const r = await get(url, { headers });
    t.equal(r.status, 200, url);
    const keys = await openpgp.readKeys({ binaryKeys: r.body });
    t.same(keys.map((k) => k.getFingerprint().toUpperCase()), [CUR, NEXT], `${url}: current first`);
    t.equal((await openpgp.readKey({ binaryKey: r.body })).getFingerprint().toUpperCase(), CUR, 'a reader of one key gets the current one');
    const head = await get(url, { method: 'HEAD', headers });
    t.equal(Number(head.headers['content-length']), r.body.length, 'HEAD tells the length of both');
    const file = join(h.home, 'wkd.bin');
    writeFileSync(file, r.body);
    await h.gpg(['--import', file]);
  }
  t.same((await h.fprs()).filter((f) => f === CUR || f === NEXT).sort(), [CUR, NEXT].sort(), 'gpg holds both keys');
  const only = await get(`${base}/.well-known/openpgpkey/plain.example/hu/${hash}`);
  t.equal((await openpgp.readKeys({ binaryKeys: only.body })).length, 1, 'a domain not in a roll: one key');
});

t.test('HKP: gpg --recv-keys <next fingerprint>; get and index by address list both', async (t) => {
  const h = await gnupg(t);
  await h.gpg(['--keyserver', `hkp://127.0.0.1:${port}`, '--recv-keys', NEXT]);
  const got = await h.fprs();
  t.ok(got.includes(NEXT) && !got.includes(CUR), 'gpg fetched the next key, and only it');

  const hkp = (q: string) => get(`${base}/pks/lookup?${q}`);
  const byAddress = encodeURIComponent(`domainkey@${D}`);
  t.same(await fingerprints((await hkp(`op=get&options=mr&search=${byAddress}`)).text), [CUR, NEXT], 'get by address: one armored block, current first');
  const index = (await hkp(`op=index&options=mr&search=${byAddress}`)).text.trim().split('\n');
  t.equal(index[0], 'info:1:2');
  t.same(index.filter((l) => l.startsWith('pub:')).map((l) => l.split(':')[1]), [CUR, NEXT], 'index lists both');
  t.same(await fingerprints((await hkp(`op=get&search=0x${NEXT}`)).text), [NEXT], 'by the next fingerprint: the next key');
  t.same(await fingerprints((await hkp(`op=get&search=0x${record.next!.openpgp!.keyId}`)).text), [NEXT], 'by its key ID');
  t.same(await fingerprints((await hkp(`op=get&search=0x${CUR}`)).text), [CUR], 'by the current fingerprint: the current key');
  t.same(await fingerprints((await hkp(`op=get&search=${encodeURIComponent('rolling.example domain key')}`)).text), [CUR, NEXT], 'by user ID text: both');
});

t.test('VKS: by the next fingerprint the next key, by address both', async (t) => {
  const byFpr = await get(`${base}/vks/v1/by-fingerprint/${NEXT}`);
  t.equal(byFpr.status, 200);
  t.same(await fingerprints(byFpr.text), [NEXT]);
  t.same(await fingerprints((await get(`${base}/vks/v1/by-keyid/${record.next!.openpgp!.keyId}`)).text), [NEXT]);
  t.same(await fingerprints((await get(`${base}/vks/v1/by-email/domainkey@${D}`)).text), [CUR, NEXT]);
  t.same(await fingerprints((await get(`${base}/vks/v1/by-email/domainkey@plain.example`)).text), [plain.keys.openpgp!.fingerprint]);
});

t.test('CRL: DER as application/pkix-crl, read by openssl; NOT_FOUND without one', async (t) => {
  const r = await get(`${base}/v1/domains/${D}/crl`);
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'application/pkix-crl');
  t.ok(r.body.equals(crlDer), 'the bytes of the record\'s first crl');
  const keyId = await caKeyId(readCertificates(record.keys.smime!.chain[1]!)[0]!);
  for (const id of [keyId, keyId.toUpperCase()]) {
    const keyed = await get(`${base}/v1/domains/${D}/crl/${id}`);
    t.equal(keyed.headers['content-type'], 'application/pkix-crl');
    t.ok(keyed.body.equals(crlDer), 'the same CRL under its CA\'s key identifier');
  }
  const dir = tempDir(t);
  writeFileSync(join(dir, 'crl.der'), r.body);
  writeFileSync(join(dir, 'ca.pem'), record.keys.smime!.chain[1]!);
  const text = (await run('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-text'])).stdout.toString();
  t.match(text, new RegExp(`Serial Number: ${revokedSerial}`, 'i'), 'openssl lists the revoked leaf');
  t.match(text, /Key Compromise/);
  t.match(text, `Issuer: CN = ${D} domain CA`);
  const verified = await run('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-CAfile', join(dir, 'ca.pem')]);
  t.match(verified.stderr + verified.stdout.toString(), /verify OK/, 'signed by the domain CA');

  const none = await get(`${base}/v1/domains/plain.example/crl`);
  t.equal(none.status, 404);
  t.equal(errorCode(none), 'NOT_FOUND');
  t.equal(errorCode(await get(`${base}/v1/domains/${D}/crl/${'ab'.repeat(20)}`)), 'NOT_FOUND', 'no CRL of that CA');
  t.equal(errorCode(await get(`${base}/v1/domains/nowhere.example/crl`)), 'DOMAIN_NOT_FOUND');
  t.equal(errorCode(await get(`${base}/v1/domains/bad_domain!/crl`)), 'DOMAIN_INVALID');
});
