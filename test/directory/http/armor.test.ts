import t from 'tap';
import { parseDomain } from '../../../directory/domain.js';
import { armorKeys } from '../../../directory/http/keys.js';
import { generateOpenPgpKey } from '../../../directory/openpgp.js';
import { gpgHome } from '../../helpers.js';

// HKP op=get and VKS answer armorKeys' block. Without the CRC-24 line GnuPG cannot read a block
// whose base64 ends without '=' padding (dev.gnupg.org/T7071): keys whose binary length is a
// multiple of 3, about a third of them. Keys of each residue are armored and imported by gpg.
t.test('gpg imports armorKeys output whatever the key length modulo 3', async (t) => {
  // A curve25519 domain key's length depends only on the domain name's (in its user ID).
  const byResidue = new Map<number, Awaited<ReturnType<typeof generateOpenPgpKey>>['publicKey'][]>();
  for (let n = 1; n <= 3; n++) {
    for (let copy = 0; copy < 2; copy++) {
      const { publicKey } = await generateOpenPgpKey(parseDomain(`${'a'.repeat(n)}.example`), { algorithm: 'curve25519', now: new Date(), validDays: 30 });
      const r = publicKey.write().length % 3;
      byResidue.set(r, [...(byResidue.get(r) ?? []), publicKey]);
    }
  }
  t.same([...byResidue.keys()].sort(), [0, 1, 2], 'keys of every length residue');
  const h = gpgHome(t);
  for (const [residue, keys] of byResidue) {
    for (const set of [[keys[0]!], keys]) {
      const block = armorKeys(set);
      t.match(block, /\n=[A-Za-z0-9+/]{4}\n-----END PGP PUBLIC KEY BLOCK-----\n$/, `length ≡ ${residue} (mod 3), ${set.length} key(s): a checksum line`);
      const imported = await h.gpg(['--import', '--import-options', 'show-only', '--with-colons'], block);
      const fprs = imported.stdout.toString().split('\n').filter((l) => l.startsWith('pub:')).length;
      t.equal(fprs, set.length, `length ≡ ${residue} (mod 3), ${set.length} key(s): gpg reads every key`);
    }
  }
});
