import t from 'tap';
import { stubResolver } from '../../federation/dns.js';
import { proveControl } from '../../federation/proof.js';
import { baseFor } from '../../federation/web.js';
import { rejectsCode } from '../helpers.js';
import { memoryDirectory, startZone } from './helpers.js';

// An S/MIME renewal changes the leaf (and so the smime= a _mailmesh TXT names) but not the
// OpenPGP key that signs the record: the proof of control must still hold, or every automatic
// renewal would be refused by every directory until the domain's DNS operator edits the TXT.

const zone = await startZone(t);
const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 1000 }), wellKnownBase: baseFor('http://127.0.0.1:1'), clock: () => new Date(), timeoutMs: 1000 };

t.test('a pin naming the record\'s OpenPGP key proves a renewed leaf; another OpenPGP key or a leaf-only pin does not', async (t) => {
  const d = await memoryDirectory();
  const before = await d.addDomain('renewing.test');
  zone.pin(before);
  t.match(await proveControl(sources, before.domain, before.keys), /_mailmesh TXT pins pgp=/);

  const renewed = await d.renewSmime(before.domain);
  t.not(renewed.keys.smime!.fingerprint, before.keys.smime!.fingerprint, 'the renewal made a new leaf');
  t.equal(renewed.keys.openpgp!.fingerprint, before.keys.openpgp!.fingerprint, 'under the same OpenPGP key');
  t.match(await proveControl(sources, renewed.domain, renewed.keys), /signs the record and its S\/MIME certificate/, 'the TXT still naming the old leaf proves the renewed record');

  // A pin that names only the leaf has no key that signs the record: it must name the leaf itself.
  zone.setTxt(`_mailmesh.${before.domain}`, `v=mm1; smime=${before.keys.smime!.fingerprint}`);
  await rejectsCode(t, proveControl(sources, renewed.domain, renewed.keys), 'PIN_MISMATCH');

  // Another OpenPGP key in the pin is still a mismatch, whatever its smime= says.
  const other = await (await memoryDirectory()).addDomain('renewing.test');
  zone.setTxt(`_mailmesh.${before.domain}`, `v=mm1; pgp=${other.keys.openpgp!.fingerprint}; smime=${renewed.keys.smime!.fingerprint}`);
  await rejectsCode(t, proveControl(sources, renewed.domain, renewed.keys), 'PIN_MISMATCH');
});
