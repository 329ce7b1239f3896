/**
 * The one read of a message on its way through the gateway (docs/architecture.md "Tunnel
 * messages"): its header section split once (gateway/header.ts), its MIME entity, Content-Type
 * and body offset, and what it is before any key is looked at. Classification, decryption,
 * encryption and the header readers take this parsed message, never the bytes again; the
 * encryption layer's bytes (the armored OpenPGP message, the CMS DER) and who it is encrypted to
 * are extracted at most once, when first asked for. Decryption reads OpenPGP packets from that
 * armor again for each attempt (openpgp.js's decrypt may change the packets it is given), so a PGP
 * message is parsed into packets once for its recipients and once per decryption. Nothing is
 * copied: every part is a view of `bytes`.
 */
import type * as openpgp from 'openpgp';
import type { TunnelFormat } from '../../directory/record.js';
import { headerFields, type HeaderSection } from '../header.js';
import { parseEnvelope, type KeyTransRecipient } from './cms/envelope.js';
import { decodeBody, entityOf, fieldValue, malformed, parseContentType, type ContentType, type Entity } from './mime.js';
import { pgpMimePayload, readPgpMessage } from './pgpmime.js';
import { isPkcs7Mime, smimeType } from './smime.js';

/**
 * What a message is before any key is looked at: PGP/MIME or S/MIME enveloped (a tunnel message
 * when it is encrypted to our keys, else someone's end-to-end mail), inline PGP (always someone's
 * end-to-end mail), or plain (anything else, also a message whose header is not MIME).
 */
export type MessageKind = TunnelFormat | 'inline-pgp' | 'plain';

/** A message read once (readTunnel). Its parts are views of `bytes`, which must not change. */
export class TunnelMessage {
  /** The header section, split by the one splitter (gateway/header.ts headerFields). */
  readonly header: HeaderSection;
  /** RFC 2045 §5.1 Content-Type (§5.2 default when absent); undefined when it or the header cannot be read. */
  readonly contentType: ContentType | undefined;
  readonly kind: MessageKind;
  /** What was read once: each value, or the error reading it threw (thrown again on every ask). */
  readonly #read = new Map<string, { value: unknown } | { error: unknown }>();

  constructor(readonly bytes: Buffer) {
    this.header = headerFields(bytes);
    let ct: ContentType | undefined;
    try {
      ct = parseContentType(fieldValue(this.entity.fields, 'content-type'));
    } catch {
      ct = undefined; // not MIME: plain, and TUNNEL_MALFORMED to whatever needs the entity
    }
    this.contentType = ct;
    this.kind = encryptedFormat(ct) ?? (ct?.type === 'text' && isInlinePgp(this.entity.body) ? 'inline-pgp' : 'plain');
  }

  #once<T>(name: string, read: () => T): T {
    let r = this.#read.get(name);
    if (!r) {
      try {
        r = { value: read() };
      } catch (error) {
        r = { error };
      }
      this.#read.set(name, r);
    }
    if ('error' in r) throw r.error;
    return r.value as T;
  }

  /** The MIME entity (gateway/tunnel/mime.ts entityOf); TUNNEL_MALFORMED when a field is not `name: value`. */
  get entity(): Entity {
    return this.#once('entity', () => entityOf(this.header));
  }

  /** RFC 3156 §4: the armored OpenPGP message of a PGP/MIME message; TUNNEL_MALFORMED for anything else. */
  armored(): string {
    if (this.kind !== 'pgp-mime') throw malformed(`not a PGP/MIME encrypted message (${this.#typeName()})`);
    return this.#once('armored', () => pgpMimePayload(this.entity, this.contentType!));
  }

  /** RFC 8551 §3.3, §3.4: the CMS DER of an S/MIME enveloped message; TUNNEL_MALFORMED for anything else. */
  der(): Buffer {
    if (this.kind !== 'smime') throw malformed(`not an S/MIME enveloped message (${this.#typeName()})`);
    return this.#once('der', () => decodeBody(this.entity));
  }

  /** RFC 4880 §5.1: the key IDs of the PGP/MIME message's PKESK packets. */
  pgpKeyIds(): Promise<openpgp.KeyID[]> {
    return this.#once('pgpKeyIds', async () => (await readPgpMessage(this.armored())).getEncryptionKeyIDs());
  }

  /** RFC 5652 §6.2.1: the key-transport recipient infos of the S/MIME message. */
  cmsRecipients(): KeyTransRecipient[] {
    return this.#once('cmsRecipients', () => parseEnvelope(this.der()).recipients);
  }

  #typeName(): string {
    return this.contentType ? `${this.contentType.type}/${this.contentType.subtype}` : 'no readable Content-Type';
  }
}

/** Reads a message once: its header, MIME entity, Content-Type, body offset and kind. Never throws. */
export function readTunnel(message: Buffer): TunnelMessage {
  return new TunnelMessage(message);
}

/** RFC 3156 §4 multipart/encrypted, RFC 8551 §3.3/§3.4 enveloped or authEnveloped pkcs7-mime. */
function encryptedFormat(ct: ContentType | undefined): TunnelFormat | undefined {
  if (!ct) return undefined;
  if (ct.type === 'multipart' && ct.subtype === 'encrypted' && ct.params.protocol?.toLowerCase() === 'application/pgp-encrypted') return 'pgp-mime';
  const t = smimeType(ct);
  if (isPkcs7Mime(ct) && (t === 'enveloped-data' || t === 'authenveloped-data' || (t === undefined && /\.p7m$/i.test(ct.params.name ?? '')))) return 'smime';
  return undefined;
}

/** RFC 4880 §6.2: a text body that starts with an armored OpenPGP message (its first 4 KiB are looked at). */
function isInlinePgp(body: Buffer): boolean {
  return /^\s*-----BEGIN PGP MESSAGE-----/.test(body.subarray(0, 4096).toString('latin1'));
}
