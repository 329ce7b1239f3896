import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import t from 'tap';
import {
  addSignature,
  formatCheckpoint,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signNote,
  verifierKey,
  type NoteSigner,
} from '../../../directory/tlog/note.js';
import { throwsCode } from '../../helpers.js';

// Vectors from golang.org/x/mod/sumdb/note (note_test.go: TestNewVerifier, TestSign, TestOpen) and
// from C2SP signed-note §"Example" and tlog-checkpoint's introduction.
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

/** An Ed25519 private key from its 32-byte seed (RFC 8410 PKCS #8). */
function ed25519FromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
}
const peterSeed = Buffer.from(PETER_SKEY.split('+').slice(4).join('+'), 'base64');
const peter: NoteSigner = { name: 'PeterNeumann', privateKey: ed25519FromSeed(peterSeed.subarray(1)) };
const fresh = (name: string): NoteSigner => ({ name, privateKey: generateKeyPairSync('ed25519').privateKey });

t.test('golang.org/x/mod/sumdb/note: our vkey and signature are theirs, byte for byte', async (t) => {
  t.equal(peterSeed[0], 1, 'their private key is Ed25519 (0x01)');
  t.equal(verifierKey('PeterNeumann', createPublicKey(peter.privateKey)), PETER_VKEY, 'vkey');
  t.equal(verifierKey('PeterNeumann', peter.privateKey), PETER_VKEY, 'from the private key too');
  const v = parseVerifierKey(PETER_VKEY);
  t.equal(v.name, 'PeterNeumann');
  t.equal(v.keyId.toString('hex'), 'c74f20a3');
  t.equal(signNote(TEXT, peter), `${TEXT}\n${PETER_SIG}`, 'Sign');
  t.same(openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [v]), { text: TEXT, verifiedBy: ['PeterNeumann'] }, 'Enoch is unknown: ignored');
  t.same(openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [v, parseVerifierKey(ENOCH_VKEY)]).verifiedBy, ['PeterNeumann', 'EnochRoot'], 'both');
  throwsCode(t, () => openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, []), 'TLOG_INVALID', 'no known key');
  throwsCode(t, () => openNote(`${TEXT}\n${ENOCH_SIG}`, [parseVerifierKey(ENOCH_VKEY), v, parseVerifierKey(ENOCH_VKEY)]), 'TLOG_INVALID', 'ambiguous key');
  t.same(openNote(`${TEXT}\n${PETER_SIG}`, [parseVerifierKey(ENOCH_VKEY), v, parseVerifierKey(ENOCH_VKEY)]).verifiedBy, ['PeterNeumann'], 'an unused duplicate verifier');
  throwsCode(t, () => openNote(`${TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`, [v]), 'TLOG_INVALID', 'invalid signature');
  const badMsgs = [
    TEXT,
    `${TEXT}\n`,
    `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
    `\x01${TEXT}\n${PETER_SIG}`,
    `\ud800${TEXT}\n${PETER_SIG}`,
    `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
    `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
    `${TEXT}\n${PETER_SIG.repeat(101)}`,
  ];
  for (const m of badMsgs) throwsCode(t, () => openNote(m, [v]), 'TLOG_INVALID', JSON.stringify(m.slice(-40)));
  // Their misnamed and wrong-hash signatures are someone else's key to us: ignored, so nothing verifies.
  throwsCode(t, () => openNote(`${TEXT}\n${PETER_SIG.replace('PeterNeumann', 'CarmenSandiego')}`, [v]), 'TLOG_INVALID', 'another name');
  throwsCode(t, () => openNote(`${TEXT}\n${PETER_SIG.replaceAll('x08g', 'xxxx')}`, [v]), 'TLOG_INVALID', 'another key ID');
});

t.test('TestNewVerifier: every substring and every one-byte change of the vkey is refused', async (t) => {
  let refused = 0;
  let tried = 0;
  const bad = (k: string): void => {
    tried++;
    try {
      parseVerifierKey(k);
      t.fail(`accepted ${k}`);
    } catch (e) {
      if ((e as { code?: string }).code === 'TLOG_INVALID') refused++;
      else t.fail(`${k}: ${String(e)}`);
    }
  };
  for (let i = 0; i <= PETER_VKEY.length; i++) for (let j = i + 1; j <= PETER_VKEY.length; j++) if (i !== 0 || j !== PETER_VKEY.length) bad(PETER_VKEY.slice(i, j));
  for (let i = 0; i < PETER_VKEY.length; i++) bad(PETER_VKEY.slice(0, i) + String.fromCharCode(PETER_VKEY.charCodeAt(i) + 1) + PETER_VKEY.slice(i + 1));
  bad('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=='); // wrong length, adjusted ID
  bad('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'); // unknown algorithm, adjusted ID
  bad('PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'); // hex is lowercase
  bad('PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T='); // bad base64
  bad('Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW');
  bad('+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW');
  t.equal(refused, tried, `${tried} mangled vkeys refused with TLOG_INVALID`);
});

t.test('C2SP signed-note §Example and the tlog-checkpoint example', async (t) => {
  const v = parseVerifierKey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k');
  const note = 'This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';
  t.same(openNote(note, [v]), { text: 'This is an example message.\n', verifiedBy: ['example.com/foo'] });
  const body = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
  const c = parseCheckpoint(body);
  t.equal(c.origin, 'example.com/behind-the-sofa');
  t.equal(c.size, 20852163);
  t.equal(c.rootHash.toString('base64'), 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=');
  t.same(c.extensions, []);
  t.equal(formatCheckpoint(c), body, 'formats back byte for byte');
  const ext = { ...c, size: 0, extensions: ['an extension', 'another'] };
  t.same(parseCheckpoint(formatCheckpoint(ext)), ext, 'extension lines and size 0 round-trip');
});

t.test('our notes: a log signs, a witness adds its line, both verify; tampering fails', async (t) => {
  const log = fresh('mailmesh.example/log');
  const witness = fresh('witness.example/w1');
  const logV = parseVerifierKey(verifierKey(log.name, log.privateKey));
  const witnessV = parseVerifierKey(verifierKey(witness.name, witness.privateKey));
  const text = formatCheckpoint({ origin: log.name, size: 5, rootHash: Buffer.alloc(32, 7), extensions: [] });
  const signed = signNote(text, log);
  t.same(openNote(signed, [logV]), { text, verifiedBy: [log.name] });
  const cosigned = addSignature(signed, witness);
  t.ok(cosigned.startsWith(signed), "the log's line is kept, first");
  t.same(openNote(cosigned, [logV, witnessV]).verifiedBy, [log.name, witness.name]);
  t.same(openNote(cosigned, [witnessV]).verifiedBy, [witness.name]);
  t.equal(addSignature(cosigned, witness), cosigned, 'signing again replaces the line (Ed25519 is deterministic)');
  throwsCode(t, () => openNote(cosigned.replace('\n5\n', '\n6\n'), [logV]), 'TLOG_INVALID', 'a changed text');
  const other = parseVerifierKey(verifierKey(log.name, fresh('x').privateKey));
  throwsCode(t, () => openNote(signed, [other]), 'TLOG_INVALID', 'same name, another key: ignored, so none verifies');
  const line = signed.slice(text.length + 1);
  throwsCode(t, () => openNote(`${signed}${line}`, [logV]), 'TLOG_INVALID', 'a duplicate signature line');
  throwsCode(t, () => openNote(`${text}\n— ${log.name} ${line.split(' ')[2]!.slice(0, -2)}!!\n`, [logV]), 'TLOG_INVALID', 'bad base64');
  throwsCode(t, () => signNote('no newline', log), 'TLOG_INVALID', 'a text without its newline');
  throwsCode(t, () => signNote('a\tb\n', log), 'TLOG_INVALID', 'a control character');
  throwsCode(t, () => signNote(text, { ...log, name: 'a+b' }), 'TLOG_INVALID', 'a name with plus');
  throwsCode(t, () => signNote(text, { ...log, privateKey: generateKeyPairSync('x25519').privateKey }), 'TLOG_INVALID', 'not Ed25519');
  throwsCode(t, () => verifierKey('', createPublicKey(log.privateKey)), 'TLOG_INVALID', 'an empty name');
  const multi = 'line one\n\nline three after a blank\n';
  t.same(openNote(signNote(multi, log), [logV]).text, multi, 'a text may hold blank lines: the last one separates');
});

t.test('malformed checkpoints: TLOG_INVALID', async (t) => {
  const root = Buffer.alloc(32, 1).toString('base64');
  const bad: Record<string, string> = {
    'missing newline': `o\n1\n${root}`,
    'two lines': 'o\n1\n',
    'origin empty': `\n1\n${root}\n`,
    'size with a leading zero': `o\n01\n${root}\n`,
    'size negative': `o\n-1\n${root}\n`,
    'size in hex': `o\n0x10\n${root}\n`,
    'size with exponent': `o\n1e3\n${root}\n`,
    'size with a space': `o\n 1\n${root}\n`,
    'size above 2^53': `o\n9007199254740993\n${root}\n`,
    'root not base64': `o\n1\n${root.slice(0, -2)}!=\n`,
    'root 31 bytes': `o\n1\n${Buffer.alloc(31).toString('base64')}\n`,
    'root in base64url': `o\n1\n${Buffer.alloc(32, 0xff).toString('base64url')}\n`,
    'an empty extension line': `o\n1\n${root}\n\n`,
    'a control character': `o\x07\n1\n${root}\n`,
  };
  for (const [what, text] of Object.entries(bad)) throwsCode(t, () => parseCheckpoint(text), 'TLOG_INVALID', what);
  const c = { origin: 'o', size: 1, rootHash: Buffer.alloc(32), extensions: [] };
  throwsCode(t, () => formatCheckpoint({ ...c, origin: '' }), 'TLOG_INVALID', 'format: origin empty');
  throwsCode(t, () => formatCheckpoint({ ...c, origin: 'a\nb' }), 'TLOG_INVALID', 'format: origin of two lines');
  throwsCode(t, () => formatCheckpoint({ ...c, size: -1 }), 'TLOG_INVALID', 'format: negative size');
  throwsCode(t, () => formatCheckpoint({ ...c, rootHash: Buffer.alloc(20) }), 'TLOG_INVALID', 'format: short root');
  throwsCode(t, () => formatCheckpoint({ ...c, extensions: [''] }), 'TLOG_INVALID', 'format: empty extension');
});
