/**
 * Tunnel crypto: pure functions from a message read once (readTunnel, gateway/tunnel/read.ts) to
 * message bytes (docs/architecture.md "Tunnel messages"). The SMTP gateway calls readTunnel, then
 * classifyMessage + encryptTunnel on the way out, classifyMessage + decryptTunnel +
 * addAuthenticationResults on the way in.
 */
import type { TunnelFormat } from '../../directory/record.js';
import { MailmeshError } from '../errors.js';
import { namesCertificate } from './cms/envelope.js';
import { pkijsCertificate } from './cms/asn1.js';
import { isEncryptedTo, pgpDecrypt, pgpEncrypt, publicKeyOf } from './pgpmime.js';
import type { TunnelMessage } from './read.js';
import { describeRecipient, smimeDecrypt, smimeEncrypt } from './smime.js';
import type { DecryptOptions, DecryptResult, EncryptOptions, OwnDomain, PeerDomain } from './types.js';

export type { DecryptOptions, DecryptResult, EncryptOptions, KeyPair, OwnDomain, PeerDomain, SignatureStatus } from './types.js';
export { keyRing } from './types.js';
export { addAuthenticationResults } from './authresults.js';
export { TUNNEL_HEADER } from './mime.js';
export { readTunnel, type MessageKind, type TunnelMessage } from './read.js';

/** Wraps the original message into a tunnel message of the given format. */
export function encryptTunnel(format: TunnelFormat, original: TunnelMessage, sender: OwnDomain, recipient: PeerDomain, opts?: EncryptOptions): Promise<Buffer> {
  return format === 'pgp-mime' ? pgpEncrypt(original, sender, recipient, opts) : smimeEncrypt(original, sender, recipient, opts);
}

/** Unwraps a tunnel message of either format; `sender` is the sender domain's record, if the directory knows it. */
export async function decryptTunnel(message: TunnelMessage, own: OwnDomain, sender?: PeerDomain, opts?: DecryptOptions): Promise<DecryptResult> {
  if (message.kind === 'pgp-mime') return pgpDecrypt(message, own, sender, opts);
  if (message.kind === 'smime') return smimeDecrypt(message, own, sender, opts);
  throw new MailmeshError('TUNNEL_MALFORMED', 'neither PGP/MIME nor S/MIME enveloped');
}

/**
 * plain: not encrypted. personal: encrypted, not to any of the keys given; `recipients` names
 * what it is encrypted to (absent when that cannot be read). tunnel: encrypted to the keys given
 * at these indices (in the order given).
 */
export type Classification =
  | { kind: 'plain' }
  | { kind: 'personal'; format: TunnelFormat | 'inline-pgp'; recipients?: string[] }
  | { kind: 'tunnel'; format: TunnelFormat; keys: number[] };

/**
 * What a message is, from the gateway's point of view:
 * - tunnel: encrypted (PGP/MIME or S/MIME) to one of `ring` (our own domain keys: current, next,
 *   retained); the decision is made from the key IDs / recipient infos alone (RFC 4880 §5.1,
 *   RFC 5652 §6.2.1), before any decryption;
 * - personal: encrypted, but not to those keys (someone's end-to-end mail) — pass it untouched;
 *   also inline PGP (a text body that is an armored OpenPGP message, RFC 4880 §6.2);
 * - plain: anything else (including a message whose header cannot be read).
 * The encryption layer is read once per message, however often it is classified. Never throws.
 */
export async function classifyMessage(message: TunnelMessage, ring?: OwnDomain['keys'] | readonly OwnDomain['keys'][]): Promise<Classification> {
  const format = message.kind;
  if (format === 'inline-pgp') return { kind: 'personal', format };
  if (format === 'plain') return { kind: 'plain' };
  const keys = ring === undefined ? [] : Array.isArray(ring) ? (ring as readonly OwnDomain['keys'][]) : [ring as OwnDomain['keys']];
  let ours: number[] = [];
  let recipients: string[] | undefined;
  try {
    if (format === 'pgp-mime') {
      const ids = await message.pgpKeyIds();
      recipients = ids.map((id) => id.toHex().toUpperCase());
      for (const [i, k] of keys.entries()) if (k.openpgp && isEncryptedTo(ids, await publicKeyOf(k.openpgp.armored))) ours.push(i);
    } else {
      const rids = message.cmsRecipients();
      recipients = rids.map(describeRecipient);
      for (const [i, k] of keys.entries()) {
        const pem = k.smime?.chain[0];
        if (pem && rids.some((r) => namesCertificate(r, pkijsCertificate(pem)))) ours.push(i);
      }
    }
  } catch {
    ours = []; // unreadable: not something we can open, so not ours to touch
  }
  return ours.length > 0 ? { kind: 'tunnel', format, keys: ours } : { kind: 'personal', format, ...(recipients ? { recipients } : {}) };
}

/** A message already encrypted to a person's own key passes the gateway untouched (docs/architecture.md "Tunnel messages"). */
export async function isPersonallyEncrypted(message: TunnelMessage, ring?: OwnDomain['keys'] | readonly OwnDomain['keys'][]): Promise<boolean> {
  return (await classifyMessage(message, ring)).kind === 'personal';
}
