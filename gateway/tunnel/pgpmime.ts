/**
 * The PGP/MIME tunnel (RFC 3156 §4): `multipart/encrypted; protocol="application/pgp-encrypted"`
 * with a `Version: 1` part and an `application/octet-stream` part holding an armored OpenPGP
 * message (RFC 4880 §6.2). Its literal data is the whole original message in binary mode
 * (RFC 4880 §5.9 format 'b': bytes unchanged), signed one-pass (§5.4) with the sender's domain
 * key and encrypted to the recipient's domain key.
 */
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { MailmeshError } from '../errors.js';
import { readOpenPgpKey } from '../../directory/openpgp.js';
import { ParsedCache } from './cache.js';
import { decodeBody, fieldValue, makeBoundary, malformed, outerHeader, parseContentType, parseEntity, splitMultipart, toCrlf, type ContentType, type Entity } from './mime.js';
import type { TunnelMessage } from './read.js';
import { hasKeys, keyRing, type DecryptOptions, type DecryptResult, type EncryptOptions, type OwnDomain, type PeerDomain } from './types.js';

// Parsed keys by their armored text (cache.ts): reading and checking a key costs ~1–2 ms.
const privateKeys = new ParsedCache<Promise<openpgp.PrivateKey>>();
const publicKeys = new ParsedCache<Promise<openpgp.PublicKey>>();

/** A private key from its armored text (RFC 4880 §11.2), parsed once per key. */
function privateKeyOf(armored: string): Promise<openpgp.PrivateKey> {
  return privateKeys.get(armored, async (armoredKey) => {
    try {
      return await openpgp.readPrivateKey({ armoredKey });
    } catch (e) {
      throw new MailmeshError('KEY_UNREADABLE', e instanceof Error ? e.message : String(e), { cause: e });
    }
  });
}

/** A domain's public key from its record (RFC 4880 §6.2 armor), parsed once per key. */
export function publicKeyOf(armored: string): Promise<openpgp.PublicKey> {
  return publicKeys.get(armored, readOpenPgpKey);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').toUpperCase();
}

/**
 * Signs the original with the sender's domain key and encrypts it to the recipient's (RFC 3156
 * §6.2: sign, then encrypt, in one OpenPGP message). During the recipient's announced roll, to
 * its next key too (one PKESK packet per key, RFC 4880 §5.1): the message opens with either.
 */
export async function pgpEncrypt(original: TunnelMessage, sender: OwnDomain, recipient: PeerDomain, opts: EncryptOptions = {}): Promise<Buffer> {
  if (!sender.secrets.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${sender.domain} has no OpenPGP key`);
  const signingKey = await privateKeyOf(sender.secrets.openpgp.armored);
  if (!recipient.keys.openpgp) throw new MailmeshError('TUNNEL_NO_KEY', `${recipient.domain} has no OpenPGP key`);
  const now = opts.now ?? new Date();
  const encryptionKeys = [await publicKeyOf(recipient.keys.openpgp.armored)];
  const next = recipient.next?.openpgp ? await usableForEncryption(recipient.next.openpgp.armored, now) : undefined;
  if (next && next.getFingerprint() !== encryptionKeys[0]!.getFingerprint()) encryptionKeys.push(next);
  const fields = original.entity.fields;
  const armored = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: new Uint8Array(original.bytes), format: 'binary', date: now }),
    encryptionKeys,
    signingKeys: signingKey,
    format: 'armored',
    date: now,
  });
  const boundary = makeBoundary(opts.random ?? randomBytes);
  const header = outerHeader(fields, 'pgp-mime', [`Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${boundary}"`], opts);
  // RFC 3156 §4: the first part is application/pgp-encrypted with "Version: 1", the second the encrypted data.
  const body =
    'This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n' +
    `--${boundary}\r\n` +
    'Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n' +
    `--${boundary}\r\n` +
    'Content-Type: application/octet-stream; name="encrypted.asc"\r\nContent-Description: OpenPGP encrypted message\r\n' +
    'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n' +
    toCrlf(armored).replace(/(\r\n)?$/, '\r\n') +
    `\r\n--${boundary}--\r\n`;
  return Buffer.concat([header, Buffer.from(body, 'latin1')]);
}

/** A key that can encrypt at `now` (RFC 4880 §5.2.3.3 key flags, expiry), or undefined: a peer's next key that cannot must not stop its mail. */
async function usableForEncryption(armored: string, now: Date): Promise<openpgp.PublicKey | undefined> {
  try {
    const key = await publicKeyOf(armored);
    await key.getEncryptionKey(undefined, now);
    return key;
  } catch {
    return undefined;
  }
}

/** RFC 3156 §4: the armored OpenPGP message of a multipart/encrypted entity (`ct` its Content-Type). */
export function pgpMimePayload(outer: Entity, ct: ContentType): string {
  if (ct.type !== 'multipart' || ct.subtype !== 'encrypted' || ct.params.protocol?.toLowerCase() !== 'application/pgp-encrypted') {
    throw malformed(`not a PGP/MIME encrypted message (${ct.type}/${ct.subtype})`);
  }
  if (!ct.params.boundary) throw malformed('multipart/encrypted without boundary');
  const parts = splitMultipart(outer.body, ct.params.boundary);
  if (parts.length !== 2) throw malformed(`multipart/encrypted with ${parts.length} parts, RFC 3156 §4 needs 2`);
  const version = parseEntity(parts[0]!);
  const vct = parseContentType(fieldValue(version.fields, 'content-type'));
  if (vct.type !== 'application' || vct.subtype !== 'pgp-encrypted' || !/^Version:\s*1\s*$/m.test(decodeBody(version).toString('latin1'))) {
    throw malformed('the first part is not application/pgp-encrypted "Version: 1"');
  }
  return decodeBody(parseEntity(parts[1]!)).toString('latin1');
}

/** Reads the armored message (RFC 4880 §6.2); any failure is TUNNEL_MALFORMED. */
export async function readPgpMessage(armored: string): Promise<openpgp.Message<Uint8Array>> {
  try {
    return (await openpgp.readMessage({ armoredMessage: armored })) as unknown as openpgp.Message<Uint8Array>;
  } catch (e) {
    throw new MailmeshError('TUNNEL_MALFORMED', `OpenPGP message: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** RFC 4880 §5.1: is one of the public-key encrypted session key packets for this key (or a wildcard, "hidden recipient")? */
export function isEncryptedTo(keyIds: openpgp.KeyID[], key: openpgp.Key): boolean {
  const mine = key.getKeys().map((k) => k.getKeyID());
  return keyIds.some((id) => mine.some((k) => k.equals(id, true)));
}

/**
 * Decrypts a PGP/MIME tunnel message with our keys (the current ones, then next and retained:
 * the first the message is encrypted to) and checks the signature against the sender's keys
 * (current, next, previous).
 */
export async function pgpDecrypt(message: TunnelMessage, own: OwnDomain, sender?: PeerDomain, opts: DecryptOptions = {}): Promise<DecryptResult> {
  const ours = keyRing(own).filter((p) => p.secrets.openpgp);
  if (ours.length === 0) throw new MailmeshError('TUNNEL_NO_KEY', `${own.domain} has no OpenPGP key`);
  const payload = message.armored();
  let msg = await readPgpMessage(payload);
  // RFC 4880 §5.1: the key IDs of the PKESK packets decide, before any decryption.
  const candidates: { key: openpgp.PrivateKey; fingerprint: string }[] = [];
  for (const p of ours) {
    const key = await privateKeyOf(p.secrets.openpgp!.armored);
    if (isEncryptedTo(msg.getEncryptionKeyIDs(), key)) candidates.push({ key, fingerprint: key.getFingerprint().toUpperCase() });
  }
  if (candidates.length === 0) throw new MailmeshError('TUNNEL_NOT_FOR_US', `encrypted to ${msg.getEncryptionKeyIDs().map((k) => k.toHex()).join(', ') || 'nobody'}`);
  const senderKeys = await verificationKeys(sender);
  let result: (openpgp.DecryptMessageResult & { data: Uint8Array }) | undefined;
  let opened = candidates[0]!;
  let failure: unknown;
  for (const c of candidates) {
    try {
      result = await openpgp.decrypt({
        message: msg,
        decryptionKeys: c.key,
        verificationKeys: senderKeys,
        format: 'binary',
        date: opts.now ?? new Date(),
        expectSigned: false,
      });
      opened = c;
      break;
    } catch (e) {
      failure = e;
      msg = await readPgpMessage(payload); // a fresh one for the next key: decrypting may have changed its packets
    }
  }
  if (!result) throw new MailmeshError('TUNNEL_DECRYPT_FAILED', failure instanceof Error ? failure.message : String(failure), { cause: failure });
  const inner = Buffer.from(result.data);
  const sig = result.signatures[0];
  // openpgp.js 6 decrypts only integrity-protected data (SEIPD, RFC 4880 §5.13) unless told otherwise.
  const sealed = { format: 'pgp-mime' as const, inner, cipher: 'openpgp-seipd', integrity: true, recipientFingerprint: opened.fingerprint };
  if (!sig) return { ...sealed, signature: 'absent' };
  const signer = senderKeys.find((k) => k.getKeys().some((sub) => sub.getKeyID().equals(sig.keyID)));
  if (!signer) {
    let issuer: Uint8Array | null | undefined;
    try {
      issuer = (await sig.signature).packets[0]?.issuerFingerprint;
    } catch {
      issuer = undefined;
    }
    return {
      ...sealed,
      signature: hasKeys(sender) ? 'key-changed' : 'unknown-signer',
      signerFingerprint: issuer ? hex(issuer) : undefined,
      detail: `signed by key ID ${sig.keyID.toHex().toUpperCase()}`,
    };
  }
  const base = { ...sealed, signerFingerprint: signer.getFingerprint().toUpperCase(), signerDomain: sender!.domain };
  try {
    await sig.verified;
    return { ...base, signature: 'valid' };
  } catch (e) {
    return { ...base, signature: 'invalid', detail: e instanceof Error ? e.message : String(e) };
  }
}

/** The sender's OpenPGP keys whose signatures are its own: current, next, previous (docs/lifecycle.md "Peers"). */
async function verificationKeys(sender: PeerDomain | undefined): Promise<openpgp.PublicKey[]> {
  const armored = [sender?.keys, ...(sender?.others ?? [])].map((k) => k?.openpgp?.armored).filter((a): a is string => !!a);
  return Promise.all([...new Set(armored)].map(publicKeyOf));
}
