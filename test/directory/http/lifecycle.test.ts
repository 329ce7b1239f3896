import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { Directory } from '../../../directory/directory.js';
import { caKeyId, readCertificates } from '../../../directory/smime.js';
import { MemoryStore } from '../../../directory/store/memory.js';
import { wkdHash } from '../../../directory/wkd.js';
import { gpgHome, run, tempDir } from '../../helpers.js';
import { get, startHttp } from './helpers.js';

// The HTTP face with the directory's own lifecycle operations (Directory.announceRoll, revokeKeys)
// and `crlUrl` naming this face: a roll's next key over WKD and HKP, then revocations; the CRL
// each leaf's distribution point names is fetched from there and checked by openssl.
const urlOf = { base: '' };
const crlUrl = (domain: string) => `${urlOf.base}/v1/domains/${domain}/crl`;
const store = new MemoryStore();
const masterKey = randomBytes(32);
const directory = await Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 365 }, crlUrl });
const { base, port } = await startHttp(t, directory);
urlOf.base = base;
const D = 'alpha.example';
const first = await directory.addDomain(D);

const dir = tempDir(t);
let n = 0;
const file = (name: string, data: string | Buffer) => (writeFileSync(join(dir, name), data), join(dir, name));
/** The CRL named in the leaf's distribution point (RFC 5280 §4.2.1.13), fetched from there, and `openssl verify -crl_check` of the leaf with it and its CA. */
const checkLeaf = async (t: Test, chain: string[]) => {
  const k = n++;
  const leaf = file(`leaf${k}.pem`, chain[0]!);
  const ca = file(`ca${k}.pem`, chain[chain.length - 1]!);
  const cdp = (await run('openssl', ['x509', '-in', leaf, '-noout', '-ext', 'crlDistributionPoints'])).stdout.toString();
  const url = /URI:(\S+)/.exec(cdp)?.[1];
  const r = await get(url!);
  t.equal(r.status, 200, `GET ${url}`);
  t.equal(r.headers['content-type'], 'application/pkix-crl');
  const crl = file(`crl${k}.der`, r.body);
  const pem = file(`crl${k}.pem`, (await run('openssl', ['crl', '-inform', 'DER', '-in', crl, '-outform', 'PEM'], { allowFail: true })).stdout);
  const checked = await run('openssl', ['verify', '-crl_check', '-CAfile', ca, '-CRLfile', pem, leaf], { allowFail: true });
  return { url: url!, code: checked.code, out: checked.stdout.toString() + checked.stderr.toString() };
};
const caId = async (chain: string[]) => caKeyId(readCertificates(chain[chain.length - 1]!)[0]!);

t.test("addDomain: the new leaf's distribution point serves its CA's first CRL; openssl -crl_check says OK", async (t) => {
  const added = await checkLeaf(t, first.keys.smime!.chain);
  t.equal(added.url, `${base}/v1/domains/${D}/crl/${await caId(first.keys.smime!.chain)}`);
  t.equal(added.code, 0, added.out);
  t.match(added.out, /OK/, 'a domain that never revoked: its leaf verifies with the CRL from its distribution point');
  t.equal(first.crls?.length, 1, 'one CA, one CRL');
  const text = (await run('openssl', ['crl', '-inform', 'DER', '-in', file('first.der', Buffer.from(first.crls![0]!, 'base64')), '-noout', '-text'])).stdout.toString();
  t.match(text, /Version 2/, 'a v2 CRL');
  t.match(text, /X509v3 CRL Number:\s*1/, 'number 1');
  t.match(text, /X509v3 Authority Key Identifier/);
  t.match(text, /No Revoked Certificates/, 'empty');
});

t.test("the CA roll: the leaf under the new CA names that CA's first CRL, announced and after the switch", async (t) => {
  // Made with a 365-day validity (the CA: 730 days); the same store opened with 1000 days finds the CA expiring within keys.validDays.
  const C = 'carol.example';
  const a0 = await directory.addDomain(C);
  const wide = await Directory.open(store, masterKey, { keys: { openpgp: 'curve25519', validDays: 1000 }, crlUrl });
  const a1 = await wide.announceRoll(C);
  t.not(await caId(a1.next!.smime!.chain), await caId(a0.keys.smime!.chain), 'a new CA is announced');
  t.equal(a1.crls?.length, 2, "the new CA's CRL and the current one's");
  const next = await checkLeaf(t, a1.next!.smime!.chain);
  t.equal(next.url, `${base}/v1/domains/${C}/crl/${await caId(a1.next!.smime!.chain)}`);
  t.equal(next.code, 0, next.out);
  t.match(next.out, /OK/, 'the announced leaf verifies with the CRL from its distribution point');
  const a2 = await wide.finishRoll(C, { now: true });
  t.same(a2.crls, a1.crls, 'the switch carries both');
  const current = await checkLeaf(t, a2.keys.smime!.chain);
  t.equal(current.code, 0, current.out);
  const old = await checkLeaf(t, a0.keys.smime!.chain);
  t.equal(old.code, 0, old.out);
  t.match(old.out, /OK/, "the old CA's leaf still verifies with its CRL");
});

t.test('announceRoll: WKD gives both keys, HKP the next one by fingerprint', async (t) => {
  const rolled = await directory.announceRoll(D);
  const NEXT = rolled.next!.openpgp!.fingerprint;
  const wkd = await get(`${base}/.well-known/openpgpkey/${D}/hu/${wkdHash('domainkey')}`);
  t.same((await openpgp.readKeys({ binaryKeys: wkd.body })).map((k) => k.getFingerprint().toUpperCase()), [first.keys.openpgp!.fingerprint, NEXT]);
  const h = gpgHome(t);
  await run('gpgconf', ['--launch', 'dirmngr'], { env: { GNUPGHOME: h.home } });
  await h.gpg(['--keyserver', `hkp://127.0.0.1:${port}`, '--recv-keys', NEXT]);
  t.match((await h.gpg(['--with-colons', '--list-keys', NEXT])).stdout.toString(), `fpr:::::::::${NEXT}:`, 'gpg --recv-keys <next fingerprint>');
});

t.test("revokeKeys: each leaf's distribution point names its CA's CRL; openssl -crl_check with what the route serves", async (t) => {
  const before = await directory.getRecord(D);
  const revoked = await directory.revokeKeys(D, 'compromised');
  t.equal(revoked.crls?.length, 2, "the new CA's CRL and the old CA's");

  const old = await checkLeaf(t, before.keys.smime!.chain);
  t.equal(old.url, `${base}/v1/domains/${D}/crl/${await caId(before.keys.smime!.chain)}`, "the old leaf's distribution point names its CA's CRL");
  t.not(old.code, 0);
  t.match(old.out, /certificate revoked/, 'the old leaf, with the CRL from its distribution point: revoked');
  const fresh = await checkLeaf(t, revoked.keys.smime!.chain);
  t.equal(fresh.url, `${base}/v1/domains/${D}/crl/${await caId(revoked.keys.smime!.chain)}`, "the new leaf's names the new CA's");
  t.not(fresh.url, old.url);
  t.equal(fresh.code, 0, fresh.out);
  t.match(fresh.out, /OK/, 'the new leaf, with the CRL from its distribution point: OK');

  // A second revocation, under the new CA: both CAs' CRLs are still served.
  const second = await directory.revokeKeys(D, 'superseded');
  t.equal(second.crls?.length, 2);
  const oldAgain = await checkLeaf(t, before.keys.smime!.chain);
  t.match(oldAgain.out, /certificate revoked/, 'the first revoked leaf is still listed by the old CA');
  const firstFresh = await checkLeaf(t, revoked.keys.smime!.chain);
  t.match(firstFresh.out, /certificate revoked/, 'the leaf revoked second is listed by the new CA');
  const newest = await checkLeaf(t, second.keys.smime!.chain);
  t.equal(newest.code, 0, newest.out);

  const current = await get(`${base}/v1/domains/${D}/crl`);
  t.ok(current.body.equals(Buffer.from(second.crls![0]!, 'base64')), '/crl serves the newest CA\'s');
  const none = await get(`${base}/v1/domains/${D}/crl/${'0'.repeat(40)}`);
  t.equal(none.status, 404);
  t.equal((none.json() as { error: { code: string } }).error.code, 'NOT_FOUND', 'another CA: NOT_FOUND');
});
