import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import t from 'tap';
import { localPartHash, openPgpKeyData, openPgpKeyOwner, pinText, smimeaData, smimeaOwner } from '../../directory/dane.js';
import { Directory } from '../../directory/directory.js';
import { domainKeyAddress, parseAddress, parseDomain } from '../../directory/domain.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { pemToDer } from '../../directory/smime.js';
import { rejectsCode } from '../helpers.js';

t.test('RFC 7929 §3 / RFC 8162 §3 owner names (VECTORS.md)', async (t) => {
  t.equal(openPgpKeyOwner(parseAddress('hugh@example.com')), 'c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com');
  t.equal(smimeaOwner(parseAddress('hugh@example.com')), 'c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com');
  t.equal(openPgpKeyOwner(domainKeyAddress(parseDomain('example.org'))), 'f901f776406a91291f1f3492a17b915e7cc7e6f59d998c28ab778248._openpgpkey.example.org');
  t.equal(localPartHash('hugh').length, 56, '28 octets in hex');
  t.not(localPartHash('Hugh'), localPartHash('hugh'), 'the local part is hashed as given (RFC 7929 §3 does not fold case)');
  t.equal(openPgpKeyOwner(parseAddress('hugh@Example.COM')), openPgpKeyOwner(parseAddress('hugh@example.com')), 'the domain is canonical');
});

t.test('pin TXT, OPENPGPKEY and SMIMEA contents of a generated domain', async (t) => {
  const d = await Directory.open(new MemoryStore(), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 } });
  const r = await d.addDomain('example.org');
  t.equal(pinText(r, 'https://dir.example'), `v=mm1; pgp=${r.keys.openpgp!.fingerprint}; smime=${r.keys.smime!.fingerprint}; dir=https://dir.example; caps=smime-aes-256-gcm`);
  t.equal(pinText({ ...r, keys: { smime: r.keys.smime }, capabilities: undefined }, 'x'), `v=mm1; smime=${r.keys.smime!.fingerprint}; dir=x`, 'an absent key and no capabilities are left out');
  const binary = Buffer.from((await openpgp.readKey({ armoredKey: r.keys.openpgp!.armored })).write());
  t.ok((await openPgpKeyData(r.keys.openpgp!.armored)).equals(binary), 'RFC 7929 §2.1: the binary transferable key');
  const s = smimeaData(r.keys.smime!.chain[0]!);
  t.same([s.usage, s.selector, s.matchingType], [3, 0, 0]);
  t.ok(s.data.equals(pemToDer(r.keys.smime!.chain[0]!)), 'the leaf certificate DER');
  await rejectsCode(t, openPgpKeyData('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n'), 'KEY_UNREADABLE');
});
