import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { decodeMasterKey, loadMasterKey, Sealer } from '../../directory/seal.js';
import { tempDir, throwsCode } from '../helpers.js';

const key = Buffer.alloc(32, 7);

t.test('seal and open round-trip; the blob is bound to its context', async (t) => {
  const s = new Sealer(key);
  const blob = s.seal(Buffer.from('private key material'), 'ctx-a');
  t.equal(s.open(blob, 'ctx-a').toString(), 'private key material');
  t.notOk(blob.includes(Buffer.from('private key material')), 'ciphertext hides the plaintext');
  t.not(s.seal(Buffer.from('x'), 'c').toString('hex'), s.seal(Buffer.from('x'), 'c').toString('hex'), 'fresh nonce each time');
  throwsCode(t, () => s.open(blob, 'ctx-b'), 'SEALED_DATA_CORRUPT', 'another context');
  throwsCode(t, () => new Sealer(Buffer.alloc(32, 8)).open(blob, 'ctx-a'), 'SEALED_DATA_CORRUPT', 'another key');
  for (let i = 0; i < blob.length; i++) {
    const bad = Buffer.from(blob);
    bad[i]! ^= 0x01;
    throwsCode(t, () => s.open(bad, 'ctx-a'), 'SEALED_DATA_CORRUPT', `bit flip at ${i}`);
  }
  throwsCode(t, () => s.open(blob.subarray(0, 20), 'ctx-a'), 'SEALED_DATA_CORRUPT', 'truncated');
  throwsCode(t, () => new Sealer(Buffer.alloc(16)), 'MASTER_KEY_INVALID');
});

t.test('master keys: base64 or hex of 32 bytes', async (t) => {
  t.same(decodeMasterKey(key.toString('base64')), key);
  t.same(decodeMasterKey(key.toString('hex') + '\n'), key);
  throwsCode(t, () => decodeMasterKey('c2hvcnQ='), 'MASTER_KEY_INVALID');
  throwsCode(t, () => decodeMasterKey(''), 'MASTER_KEY_INVALID');
});

t.test('the key file is created once, with mode 0600, and reused', async (t) => {
  const file = join(tempDir(t), 'sub', 'master.key');
  throwsCode(t, () => loadMasterKey({ file, create: false }), 'MASTER_KEY_INVALID', 'no file and no creation');
  const k1 = loadMasterKey({ file, create: true });
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.same(loadMasterKey({ file, create: true }), k1, 'reused');
  t.same(loadMasterKey({ file, create: false, value: key.toString('base64') }), key, 'the value wins over the file');
  writeFileSync(file, 'garbage');
  throwsCode(t, () => loadMasterKey({ file, create: true }), 'MASTER_KEY_INVALID', 'a corrupt key file is not replaced');
  t.equal(readFileSync(file, 'utf8'), 'garbage');
  t.ok(existsSync(file));
});
