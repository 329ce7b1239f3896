import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t from 'tap';
import { Directory } from '../../../directory/directory.js';
import { MemoryStore } from '../../../directory/store/memory.js';
import { wkdHash } from '../../../directory/wkd.js';
import { gpgHome, run, tempDir } from '../../helpers.js';
import { get, startHttp } from './helpers.js';

// The HTTP face with the directory's own lifecycle operations (Directory.announceRoll, revokeKeys)
// and `crlUrl` naming this face: a roll's next key over WKD and HKP, then a revocation whose CRL
// the old leaf's distribution point names, fetched from there and checked by openssl.
const urlOf = { base: '' };
const directory = await Directory.open(new MemoryStore(), randomBytes(32), {
  keys: { openpgp: 'curve25519', validDays: 365 },
  crlUrl: (domain) => `${urlOf.base}/v1/domains/${domain}/crl`,
});
const { base, port } = await startHttp(t, directory);
urlOf.base = base;
const D = 'alpha.example';
const first = await directory.addDomain(D);

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

t.test('revokeKeys: the old leaf names the CRL route; openssl finds the leaf revoked in what it serves', async (t) => {
  const before = await directory.getRecord(D);
  const [leafPem, caPem] = before.keys.smime!.chain;
  const revoked = await directory.revokeKeys(D, 'compromised');
  t.ok(revoked.crl, 'the record carries a CRL');

  const dir = tempDir(t);
  const file = (name: string, data: string | Buffer) => (writeFileSync(join(dir, name), data), join(dir, name));
  const leaf = file('leaf.pem', leafPem!);
  const ca = file('ca.pem', caPem!);
  const cdp = (await run('openssl', ['x509', '-in', leaf, '-noout', '-ext', 'crlDistributionPoints'])).stdout.toString();
  const url = /URI:(\S+)/.exec(cdp)?.[1];
  t.equal(url, `${base}/v1/domains/${D}/crl`, 'the CRL distribution point (RFC 5280 §4.2.1.13) names the route');

  const r = await get(url!);
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'application/pkix-crl');
  const crl = file('crl.der', r.body);
  const pem = file('crl.pem', (await run('openssl', ['crl', '-inform', 'DER', '-in', crl, '-outform', 'PEM'])).stdout);
  const ok = await run('openssl', ['verify', '-CAfile', ca, leaf]);
  t.match(ok.stdout.toString(), /OK/, 'without the CRL the old leaf verifies');
  const checked = await run('openssl', ['verify', '-crl_check', '-CAfile', ca, '-CRLfile', pem, leaf], { allowFail: true });
  t.not(checked.code, 0);
  t.match(checked.stdout.toString() + checked.stderr, /certificate revoked/, 'with the served CRL: revoked');
});
