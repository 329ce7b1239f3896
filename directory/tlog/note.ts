/**
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519 keys, and C2SP tlog-checkpoint
 * (https://c2sp.org/tlog-checkpoint): the checkpoint body and its parsing. Pure. docs/transparency.md.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { MailmeshError } from '../errors.js';

/** A note signer: its name (the log's origin, or a witness name) and Ed25519 private key. */
export interface NoteSigner {
  name: string;
  privateKey: KeyObject;
}

/** A note verifier: name, 4-byte key ID (signed-note §"Signatures") and Ed25519 public key. */
export interface NoteVerifier {
  name: string;
  keyId: Buffer;
  publicKey: KeyObject;
}

/** signed-note §"Signature types": Ed25519. */
const ED25519 = 0x01;
/** signed-note §"Format": verifiers MUST accept at least 16 signatures; golang.org/x/mod/sumdb/note stops at 100. */
const MAX_SIGNATURES = 100;
const EM_DASH = '\u2014';

const invalid = (detail: string): MailmeshError => new MailmeshError('TLOG_INVALID', detail);

/** signed-note §"Format": key names are non-empty, without Unicode spaces or plus. */
function checkName(name: string, what = 'key name'): void {
  if (typeof name !== 'string' || name === '' || /[\s+]/u.test(name) || badText(name)) {
    throw invalid(`${what} ${JSON.stringify(name)} is empty or has a space, plus or control character`);
  }
}

/** signed-note §"Format": valid UTF-8 (no lone surrogate here) and no ASCII control character but newline. */
const badText = (s: string): boolean => /[\x00-\x09\x0b-\x1f]|\p{Surrogate}/u.test(s); // eslint-disable-line no-control-regex

/** RFC 4648 §4 base64, canonical only (the padding and the unused bits as the encoder writes them). */
function strictBase64(s: string, what: string): Buffer {
  const b = Buffer.from(s, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0 || b.toString('base64') !== s) throw invalid(`${what} is not base64`);
  return b;
}

/** The 32 bytes of an Ed25519 public key (RFC 8032 encoding). */
function rawPublicKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') throw invalid(`the key is ${key.asymmetricKeyType ?? key.type}, not Ed25519`);
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
}

/** signed-note §"Ed25519 signatures": SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]. */
function keyIdOf(name: string, raw: Buffer): Buffer {
  return createHash('sha256').update(name).update(Buffer.of(0x0a, ED25519)).update(raw).digest().subarray(0, 4);
}

/** signed-note "vkey" text: `<name>+<hex key ID>+<base64(0x01 || 32-byte Ed25519 key)>`. */
export function verifierKey(name: string, publicKey: KeyObject): string {
  checkName(name);
  const raw = rawPublicKey(publicKey);
  return `${name}+${keyIdOf(name, raw).toString('hex')}+${Buffer.concat([Buffer.of(ED25519), raw]).toString('base64')}`;
}

/** Parses a vkey (signed-note §"Verifier keys"; Ed25519, algorithm byte 0x01); throws a MailmeshError TLOG_INVALID when malformed. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  // The name has no plus; the base64 key may have some.
  const m = typeof vkey === 'string' ? /^([^+]*)\+([^+]*)\+(.*)$/su.exec(vkey) : null;
  if (!m) throw invalid('a verifier key is <name>+<key ID>+<key>');
  const [, name, id, key64] = m as unknown as [string, string, string, string];
  checkName(name);
  if (!/^[0-9a-f]{8}$/.test(id)) throw invalid(`the verifier key's ID ${JSON.stringify(id)} is not 8 lowercase hex digits`);
  const key = strictBase64(key64, "the verifier key's key");
  if (key.length !== 33 || key[0] !== ED25519) throw invalid('the verifier key is not an Ed25519 key (0x01 and 32 bytes)');
  const raw = key.subarray(1);
  const keyId = keyIdOf(name, raw);
  if (keyId.toString('hex') !== id) throw invalid(`the verifier key's ID ${id} is not the key's (${keyId.toString('hex')})`);
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  return { name, keyId, publicKey };
}

/** signed-note §"Format": the text is non-empty, ends with a newline, is well-formed and has no control character but newline. */
function checkText(text: string): void {
  if (typeof text !== 'string' || !text.endsWith('\n') || badText(text)) {
    throw invalid('a note text ends with a newline and has no control character but newline');
  }
}

/** One signature line: `— <name> base64(keyID || signature)` (signed-note §"Signatures"). */
interface SignatureLine {
  name: string;
  keyId: Buffer;
  signature: Buffer;
}

function signatureLine(text: string, signer: NoteSigner): SignatureLine {
  checkName(signer.name);
  const keyId = keyIdOf(signer.name, rawPublicKey(signer.privateKey));
  if (signer.privateKey.type !== 'private') throw invalid('a note signer needs a private key');
  return { name: signer.name, keyId, signature: sign(null, Buffer.from(text, 'utf8'), signer.privateKey) };
}

const formatLine = (s: SignatureLine): string => `${EM_DASH} ${s.name} ${Buffer.concat([s.keyId, s.signature]).toString('base64')}\n`;
const sameKey = (a: { name: string; keyId: Buffer }, b: { name: string; keyId: Buffer }): boolean => a.name === b.name && a.keyId.equals(b.keyId);

/** Splits a signed note (signed-note §"Format": text, blank line, signature lines); TLOG_INVALID when malformed. */
function splitNote(note: string): { text: string; signatures: SignatureLine[] } {
  if (typeof note !== 'string' || badText(note)) throw invalid('a note is well-formed text without control characters but newline');
  const at = note.lastIndexOf('\n\n');
  if (at < 0 || !note.endsWith('\n')) throw invalid('a signed note is text, a blank line and signature lines, each ending with a newline');
  const text = note.slice(0, at + 1);
  const lines = note.slice(at + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw invalid(`a note with more than ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    const m = /^\u2014 ([^ ]+) ([^ ]+)$/u.exec(line);
    if (!m) throw invalid(`not a signature line: ${JSON.stringify(line.slice(0, 80))}`);
    checkName(m[1]!);
    const bytes = strictBase64(m[2]!, `the signature of ${m[1]}`);
    if (bytes.length < 5) throw invalid(`the signature of ${m[1]} is too short`);
    return { name: m[1]!, keyId: bytes.subarray(0, 4), signature: bytes.subarray(4) };
  });
  signatures.forEach((s, i) => {
    if (signatures.findIndex((o) => sameKey(o, s)) !== i) throw invalid(`two signature lines of ${s.name}+${s.keyId.toString('hex')}`);
  });
  return { text, signatures };
}

/** Signs `text` (ends with a newline): the note with one signature line `— <name> <base64(keyID || sig)>` (signed-note §"Format"). */
export function signNote(text: string, signer: NoteSigner): string {
  checkText(text);
  return `${text}\n${formatLine(signatureLine(text, signer))}`;
}

/**
 * Adds a signature line of `signer` to a signed note (a witness cosigning keeps the log's line);
 * a line of the same key (name and key ID) is replaced. The note is not verified: open it first.
 */
export function addSignature(note: string, signer: NoteSigner): string {
  const { text, signatures } = splitNote(note);
  const line = signatureLine(text, signer);
  return `${text}\n${[...signatures.filter((s) => !sameKey(s, line)), line].map(formatLine).join('')}`;
}

/**
 * Splits a note and checks its signatures against `verifiers` (signed-note §"Signatures"): the
 * text and the names whose signatures verified, in the note's order. Unknown signers (name or key
 * ID unknown) are ignored; a bad signature of a known key, two verifiers for one key, two lines of
 * one key, or no known signature at all are errors (TLOG_INVALID): the spec says a note no known
 * key signed MUST be rejected.
 */
export function openNote(note: string, verifiers: NoteVerifier[]): { text: string; verifiedBy: string[] } {
  const { text, signatures } = splitNote(note);
  const verifiedBy: string[] = [];
  for (const s of signatures) {
    const known = verifiers.filter((v) => sameKey(v, s));
    if (known.length > 1) throw invalid(`ambiguous key ${s.name}+${s.keyId.toString('hex')}: more than one verifier`);
    if (!known.length) continue;
    if (s.signature.length !== 64 || !verify(null, Buffer.from(text, 'utf8'), known[0]!.publicKey, s.signature)) {
      throw invalid(`invalid signature for key ${s.name}+${s.keyId.toString('hex')}`);
    }
    verifiedBy.push(s.name);
  }
  if (!verifiedBy.length) throw invalid('the note has no signature of a known key');
  return { text, verifiedBy };
}

/** tlog-checkpoint body: origin line, decimal tree size, base64 root hash, optional extension lines. */
export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  extensions: string[];
}

function checkLine(line: string, what: string): void {
  if (typeof line !== 'string' || line === '' || line.includes('\n') || badText(line)) {
    throw invalid(`the checkpoint's ${what} is empty or not one line of text`);
  }
}

/** tlog-checkpoint §"Note text": `<origin>\n<size>\n<base64 root>\n` and the extension lines. */
export function formatCheckpoint(c: Checkpoint): string {
  checkLine(c.origin, 'origin');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw invalid(`the checkpoint's size ${String(c.size)} is not a tree size`);
  if (!Buffer.isBuffer(c.rootHash) || c.rootHash.length !== 32) throw invalid("the checkpoint's root hash is not 32 bytes");
  c.extensions.forEach((e) => checkLine(e, 'extension line'));
  return [c.origin, String(c.size), c.rootHash.toString('base64'), ...c.extensions].map((l) => `${l}\n`).join('');
}

/** Parses a checkpoint body (the note text; tlog-checkpoint §"Note text"); TLOG_INVALID when malformed. */
export function parseCheckpoint(text: string): Checkpoint {
  checkText(text);
  const [origin, size, root, ...extensions] = text.slice(0, -1).split('\n') as [string, string?, string?, ...string[]];
  if (root === undefined) throw invalid('a checkpoint has an origin, a size and a root hash line');
  checkLine(origin, 'origin');
  if (!/^(0|[1-9][0-9]*)$/.test(size!) || !Number.isSafeInteger(Number(size))) throw invalid(`the checkpoint's size ${JSON.stringify(size)} is not a decimal tree size`);
  const rootHash = strictBase64(root, "the checkpoint's root hash");
  if (rootHash.length !== 32) throw invalid("the checkpoint's root hash is not 32 bytes");
  extensions.forEach((e) => checkLine(e, 'extension line'));
  return { origin, size: Number(size), rootHash, extensions };
}
