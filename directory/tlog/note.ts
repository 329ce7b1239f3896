/**
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519 keys, and C2SP tlog-checkpoint
 * (https://c2sp.org/tlog-checkpoint): the checkpoint body and its parsing. Pure. docs/transparency.md.
 */
import type { KeyObject } from 'node:crypto';

const todo = (): never => {
  throw new Error('not written yet');
};

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

/** signed-note "vkey" text: `<name>+<hex key ID>+<base64(0x01 || 32-byte Ed25519 key)>`. */
export function verifierKey(name: string, publicKey: KeyObject): string {
  void [name, publicKey];
  return todo();
}

/** Parses a vkey (Ed25519, algorithm byte 0x01); throws a MailmeshError TLOG_INVALID when malformed. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  void vkey;
  return todo();
}

/** Signs `text` (ends with a newline): the note with one signature line `— <name> <base64(keyID || sig)>`. */
export function signNote(text: string, signer: NoteSigner): string {
  void [text, signer];
  return todo();
}

/** Adds a signature line of `signer` to a signed note (a witness cosigning keeps the log's line). */
export function addSignature(note: string, signer: NoteSigner): string {
  void [note, signer];
  return todo();
}

/** Splits a note and checks its signatures against `verifiers`: the text and the names whose signatures verified; unknown signers are ignored, a bad signature of a known key is an error (TLOG_INVALID). */
export function openNote(note: string, verifiers: NoteVerifier[]): { text: string; verifiedBy: string[] } {
  void [note, verifiers];
  return todo();
}

/** tlog-checkpoint body: origin line, decimal tree size, base64 root hash, optional extension lines. */
export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  extensions: string[];
}

export function formatCheckpoint(c: Checkpoint): string {
  void c;
  return todo();
}

/** Parses a checkpoint body (the note text); TLOG_INVALID when malformed. */
export function parseCheckpoint(text: string): Checkpoint {
  void text;
  return todo();
}
