// Property tests on the CMS and tunnel parsers: random mutations of valid inputs end in a
// result or a clean TUNNEL_* error, never a crash or a hang.
import t, { type Test } from 'tap';
import { isMailmeshError } from '../../../directory/errors.js';
import { openEnvelope, parseEnvelope } from '../../../gateway/tunnel/cms/envelope.js';
import { signContent, verifySigned } from '../../../gateway/tunnel/cms/signed.js';
import { decodeBody, parseEntity } from '../../../gateway/tunnel/mime.js';
import { decryptTunnel, encryptTunnel, readTunnel } from '../../../gateway/tunnel/tunnel.js';
import { run, seeded, tempDir } from '../../helpers.js';
import { aeadPeer, makeDomain, mutate, NOW, peer, sampleMessage } from './fixtures.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [alpha, beta] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test')]);
const original = sampleMessage(5).subarray(0, 1200);
const betaCert = beta.keys.smime!.chain[0]!;
const betaKey = beta.secrets.smime!.keyPkcs8Pem;

async function fuzz(t: Test, name: string, seedInput: Buffer, rounds: number, f: (m: Buffer) => unknown, seed: number): Promise<void> {
  const rnd = seeded(seed);
  let refused = 0;
  for (let i = 0; i < rounds; i++) {
    let m: Buffer = seedInput;
    for (let j = 1 + Math.floor(rnd() * 3); j > 0; j--) m = mutate(m, rnd);
    try {
      await f(m);
    } catch (e) {
      refused++;
      if (!isMailmeshError(e) || !e.code.startsWith('TUNNEL_')) {
        t.fail(`${name}, round ${i}: ${e instanceof Error ? e.stack : String(e)}`);
        return;
      }
    }
  }
  t.ok(refused > 0, `${name}: ${refused} of ${rounds} mutations refused with TUNNEL_* codes, none crashed`);
}

t.test('EnvelopedData (ours) and AuthEnvelopedData (OpenSSL, BER)', async (t) => {
  const ours = decodeBody(parseEntity(await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW })));
  parseEnvelope(ours);
  await fuzz(t, 'EnvelopedData', ours, 400, (m) => openEnvelope(m, betaCert, betaKey), 1);

  const dir = tempDir(t);
  const leaf = join(dir, 'leaf.pem');
  writeFileSync(leaf, betaCert);
  const gcm = await run('openssl', ['cms', '-encrypt', '-aes-256-gcm', '-outform', 'DER', '-stream', '-recip', leaf], { input: original });
  t.equal(gcm.code, 0, gcm.stderr);
  t.ok(openEnvelope(gcm.stdout, betaCert, betaKey).content.equals(original), 'streamed (indefinite-length) AuthEnvelopedData opens');
  await fuzz(t, 'AuthEnvelopedData', gcm.stdout, 400, (m) => openEnvelope(m, betaCert, betaKey), 2);
  const cbc = await run('openssl', ['cms', '-encrypt', '-aes128', '-outform', 'DER', '-stream', '-recip', leaf], { input: original });
  t.ok(openEnvelope(cbc.stdout, betaCert, betaKey).content.equals(original), 'streamed EnvelopedData (chunked OCTET STRING) opens');
  await fuzz(t, 'streamed EnvelopedData', cbc.stdout, 200, (m) => openEnvelope(m, betaCert, betaKey), 3);

  // Ours (RFC 5083): whatever a mutation leaves readable opens to the same content, or not at all.
  const aead = decodeBody(parseEntity(await encryptTunnel('smime', readTunnel(original), alpha, aeadPeer(beta), { now: NOW })));
  const inner = openEnvelope(aead, betaCert, betaKey).content;
  await fuzz(t, 'AuthEnvelopedData (ours)', aead, 300, (m) => {
    if (!openEnvelope(m, betaCert, betaKey).content.equals(inner)) t.fail('a changed AuthEnvelopedData opened to other content');
  }, 5);
});

t.test('SignedData', async (t) => {
  const signed = await signContent(original, alpha.keys.smime!.chain, alpha.secrets.smime!.keyPkcs8Pem, NOW);
  const v = await verifySigned(signed, undefined, []);
  t.equal(v.outcome, 'verified');
  let changed = 0;
  await fuzz(t, 'SignedData', signed, 300, async (m) => {
    const r = await verifySigned(m, undefined, alpha.keys.smime!.chain);
    if (r.outcome === 'verified' && !r.content.equals(original)) t.fail('a changed content verified');
    if (r.outcome !== 'verified') changed++;
  }, 4);
  t.ok(changed > 0, 'mutations that parse do not verify');
});

t.test('whole tunnel messages, both formats (S/MIME with CBC and with GCM)', async (t) => {
  const cases = [['pgp-mime', peer(beta)], ['smime', peer(beta)], ['smime', aeadPeer(beta)]] as const;
  for (const [i, [format, to]] of cases.entries()) {
    const sealed = await encryptTunnel(format, readTunnel(original), alpha, to, { now: NOW });
    await fuzz(t, `${format}${to.capabilities ? ' (GCM)' : ''}`, sealed, 150, async (m) => {
      const r = await decryptTunnel(readTunnel(m), beta, peer(alpha));
      if (r.signature === 'valid' && !r.inner.equals(original)) t.fail('a changed message has a valid signature');
      if (r.integrity && r.cipher !== 'openpgp-seipd' && !r.inner.equals(original)) t.fail('changed GCM content was accepted');
    }, 10 + i);
  }
});
