import t from 'tap';
import type { TunnelFormat } from '../../../directory/record.js';
import { ParsedCache } from '../../../gateway/tunnel/cache.js';
import { pkijsCertificate } from '../../../gateway/tunnel/cms/asn1.js';
import { publicKeyOf } from '../../../gateway/tunnel/pgpmime.js';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../../gateway/tunnel/tunnel.js';
import { rejectsCode } from '../../helpers.js';
import { makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

t.test('ParsedCache: one parse per text, least recently used leaves first', async (t) => {
  const parsed: string[] = [];
  const cache = new ParsedCache<{ text: string }>(2);
  const parse = (text: string) => {
    parsed.push(text);
    return { text };
  };
  const a = cache.get('a', parse);
  t.equal(cache.get('a', parse), a, 'the same object for the same text');
  cache.get('b', parse);
  cache.get('a', parse); // a is now the most recently used
  cache.get('c', parse); // evicts b
  t.equal(cache.size, 2);
  t.equal(cache.get('a', parse), a, 'a stayed');
  cache.get('b', parse);
  t.same(parsed, ['a', 'b', 'c', 'b'], 'b was parsed again after it left');
});

t.test('ParsedCache: a failed parse is not kept', async (t) => {
  const cache = new ParsedCache<unknown>();
  let calls = 0;
  const bad = () => {
    calls++;
    throw new Error('unreadable');
  };
  t.throws(() => cache.get('x', bad));
  t.throws(() => cache.get('x', bad));
  t.equal(calls, 2, 'the error comes again, from a new parse');
  t.equal(cache.size, 0);

  const rejecting = () => {
    calls++;
    return Promise.reject(new Error('unreadable'));
  };
  await t.rejects(cache.get('y', rejecting) as Promise<unknown>);
  await t.rejects(cache.get('y', rejecting) as Promise<unknown>);
  t.equal(calls, 4, 'a rejected parse is dropped too');
  t.equal(cache.size, 0);
});

const [alpha, alpha2, beta, beta2] = await Promise.all(['alpha.test', 'alpha.test', 'beta.test', 'beta.test'].map(makeDomain));
const original = sampleMessage();

t.test('parsed keys and certificates are shared per text', async (t) => {
  t.equal(publicKeyOf(beta.keys.openpgp!.armored), publicKeyOf(beta.keys.openpgp!.armored));
  t.not(await publicKeyOf(beta.keys.openpgp!.armored), await publicKeyOf(beta2.keys.openpgp!.armored));
  t.equal(pkijsCertificate(beta.keys.smime!.chain[0]!), pkijsCertificate(beta.keys.smime!.chain[0]!));
  // Unreadable input is refused every time, never served from the cache.
  await rejectsCode(t, publicKeyOf('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n'), 'KEY_UNREADABLE');
  await rejectsCode(t, publicKeyOf('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n'), 'KEY_UNREADABLE');
  await rejectsCode(t, encryptTunnel('pgp-mime', readTunnel(original), { ...alpha, secrets: { openpgp: { armored: 'garbage' } } }, peer(beta)), 'KEY_UNREADABLE');
  await rejectsCode(t, encryptTunnel('pgp-mime', readTunnel(original), { ...alpha, secrets: { openpgp: { armored: 'garbage' } } }, peer(beta)), 'KEY_UNREADABLE');
  const badPem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  t.throws(() => pkijsCertificate(badPem));
  t.throws(() => pkijsCertificate(badPem), 'again');
});

for (const format of ['pgp-mime', 'smime'] as TunnelFormat[]) {
  t.test(`${format}: new keys of a domain are used at once (the cache follows the records)`, async (t) => {
    // Warm the caches with the first keys of both domains.
    const first = await encryptTunnel(format, readTunnel(original), alpha, peer(beta), { now: NOW });
    t.equal((await decryptTunnel(readTunnel(first), beta, peer(alpha), { now: NOW })).signature, 'valid');

    // beta.test rolls over: mail goes to the new key, which the old one cannot open.
    const second = await encryptTunnel(format, readTunnel(original), alpha, peer(beta2), { now: NOW });
    const opened = await decryptTunnel(readTunnel(second), beta2, peer(alpha), { now: NOW });
    t.ok(opened.inner.equals(original));
    t.equal(opened.signature, 'valid');
    await rejectsCode(t, decryptTunnel(readTunnel(second), beta, peer(alpha), { now: NOW }), 'TUNNEL_NOT_FOR_US');

    // alpha.test rolls over: its new signature is checked against the record given, old or new.
    const third = await encryptTunnel(format, readTunnel(original), alpha2, peer(beta), { now: NOW });
    t.equal((await decryptTunnel(readTunnel(third), beta, peer(alpha2), { now: NOW })).signature, 'valid');
    t.equal((await decryptTunnel(readTunnel(third), beta, peer(alpha), { now: NOW })).signature, 'key-changed', 'not valid for the old record: a key it never announced');
    t.equal((await decryptTunnel(readTunnel(third), beta, { ...peer(alpha), others: [alpha2.keys] }, { now: NOW })).signature, 'valid', 'valid for the old record that announced it as next');
    t.equal((await decryptTunnel(readTunnel(first), beta, peer(alpha), { now: NOW })).signature, 'valid', 'old mail still opens with the old keys');
  });
}
