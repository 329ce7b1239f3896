import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as openpgp from 'openpgp';
import t from 'tap';
import { parseAddress, parseDomain } from '../../directory/domain.js';
import { run, seeded } from '../helpers.js';
import { WKD_HASH, wkdHash, wkdKey, wkdUrls, zBase32 } from '../../directory/wkd.js';

const WKS_CLIENT = ['/usr/lib/gnupg/gpg-wks-client', '/usr/bin/gpg-wks-client'].find((p) => existsSync(p)) ?? 'gpg-wks-client';

t.test('VECTORS.md: WKD hashes and URLs (draft-koch-openpgp-webkey-service §3.1)', async (t) => {
  t.equal(wkdHash('Joe.Doe'), 'iy9q119eutrkn8s1mk4r39qejnbu3n5q');
  t.equal(wkdHash('domainkey'), 'tbdotw9wtigph674phkbgx6g3gqkq73s');
  t.same(wkdUrls(parseAddress('Joe.Doe@Example.ORG')), {
    advanced: 'https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
    direct: 'https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
  });
});

t.test('z-base-32 (RFC 6189 §5.1.6 alphabet): known values and length', async (t) => {
  t.equal(zBase32(Buffer.alloc(0)), '');
  t.equal(zBase32(Buffer.from([0])), 'yy', '8 zero bits: two zero digits');
  t.equal(zBase32(Buffer.from([0xff])), '9h', '11111 111(00)');
  t.equal(zBase32(Buffer.from([0xf0, 0xbf, 0xc7])), '6n9hq', 'the example of the z-base-32 specification');
  const rnd = seeded(11);
  for (let i = 0; i < 500; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
    const z = zBase32(bytes);
    t.equal(z.length, Math.ceil((bytes.length * 8) / 5));
    // Decoding the first 8*n bits back gives the input: the encoding loses nothing.
    const bits = [...z].map((c) => 'ybndrfg8ejkmcpqxot1uwisza345h769'.indexOf(c).toString(2).padStart(5, '0')).join('');
    const back = Buffer.from(Array.from({ length: bytes.length }, (_, k) => parseInt(bits.slice(k * 8, k * 8 + 8), 2)));
    if (!back.equals(bytes)) t.fail(`round trip of ${bytes.toString('hex')}`);
  }
});

t.test('the hash lower-cases ASCII letters only', async (t) => {
  t.equal(wkdHash('DomainKey'), wkdHash('domainkey'));
  t.not(wkdHash('Ärger'), wkdHash('ärger'), 'non-ASCII letters keep their case, like gpg');
  const sha = createHash('sha1').update('ärger').digest();
  t.equal(wkdHash('ärger'), zBase32(sha));
  t.match(wkdHash('x'), WKD_HASH);
});

t.test('gpg-wks-client --print-wkd-hash agrees', async (t) => {
  const addresses = ['Joe.Doe@Example.ORG', 'domainkey@demo.mailmesh.test', 'domainkey@example.org', 'Alice.Smith+tag@Mail.Example.COM',
    'x@a.example', 'o\'brien@example.net', 'postmaster@xn--bcher-kva.example'];
  const { stdout } = await run(WKS_CLIENT, ['--print-wkd-hash', ...addresses]);
  const lines = stdout.toString().trim().split('\n');
  t.equal(lines.length, addresses.length);
  addresses.forEach((addr, i) => {
    const [hash, mbox] = lines[i]!.split(' ');
    t.equal(wkdHash(parseAddress(addr).local), hash, `${addr} → ${mbox}`);
  });
});

t.test('wkdKey keeps only the user IDs of the looked-up address, and none without a match', async (t) => {
  const { publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Domain key', email: 'domainkey@example.org' }, { name: 'Alice', email: 'Alice@example.org' }, { email: 'bob@other.example' }],
    format: 'object',
  });
  const domain = parseDomain('example.org');
  const users = async (bytes: Uint8Array | undefined) => (bytes ? (await openpgp.readKey({ binaryKey: bytes })).getUserIDs() : []);
  t.same(await users(wkdKey(publicKey, domain, wkdHash('domainkey'))), ['Domain key <domainkey@example.org>']);
  t.same(await users(wkdKey(publicKey, domain, wkdHash('alice'))), ['Alice <Alice@example.org>'], 'the hash is of the lower-cased local part');
  t.equal(wkdKey(publicKey, domain, wkdHash('bob')), undefined, 'bob is in another domain');
  t.equal(wkdKey(publicKey, parseDomain('other.example'), wkdHash('domainkey')), undefined);
  t.equal(publicKey.getUserIDs().length, 3, 'the key itself is not changed');
  const reduced = await openpgp.readKey({ binaryKey: wkdKey(publicKey, domain, wkdHash('alice'))! });
  t.equal(reduced.getFingerprint(), publicKey.getFingerprint());
  t.equal(reduced.getSubkeys().length, 1, 'the encryption subkey stays');
  await t.resolves(reduced.verifyPrimaryKey(), 'still a valid key');
});
