/**
 * The S/MIME tunnel (RFC 8551): `application/pkcs7-mime; smime-type=authEnveloped-data` (§3.4,
 * AES-256-GCM, to peers whose record announces SMIME_AEAD) or `smime-type=enveloped-data` (§3.3,
 * AES-256-CBC, to the others) around an `application/pkcs7-mime; smime-type=signed-data` entity
 * (§3.5.2, signing then encrypting as §3.6 describes) whose encapsulated content is the whole
 * original message. This is what `openssl cms -decrypt` followed by `openssl cms -verify` reads.
 */
import { createHash } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { MailmeshError } from '../errors.js';
import { SMIME_AEAD } from '../../directory/record.js';
import { validateSmimeChain } from '../../directory/smime.js';
import { pkijsCertificate } from './cms/asn1.js';
import { contentFailed, namesCertificate, openEnvelope, type KeyTransRecipient } from './cms/envelope.js';
import { sealAuthEnvelope, sealEnvelope } from './cms/seal.js';
import { signContent, verifySigned } from './cms/signed.js';
import {
  decodeBody,
  encodeBase64Lines,
  fieldValue,
  malformed,
  outerHeader,
  parseContentType,
  parseEntity,
  splitMultipart,
  type ContentType,
} from './mime.js';
import type { TunnelMessage } from './read.js';
import { hasKeys, keyRing, type DecryptOptions, type DecryptResult, type EncryptOptions, type OwnDomain, type PeerDomain } from './types.js';

const P7M = 'name="smime.p7m"';
const P7M_DISPOSITION = 'Content-Disposition: attachment; filename="smime.p7m"';

function smimeKeys(own: OwnDomain): { chain: string[]; key: string } {
  const chain = own.keys.smime?.chain;
  const key = own.secrets.smime?.keyPkcs8Pem;
  if (!chain?.length || !key) throw new MailmeshError('TUNNEL_NO_KEY', `${own.domain} has no S/MIME key`);
  return { chain, key };
}

/** RFC 8551 §3.2.1–3.2.2: application/pkcs7-mime (or the older x-pkcs7-mime). */
export function isPkcs7Mime(ct: ContentType): boolean {
  return ct.type === 'application' && (ct.subtype === 'pkcs7-mime' || ct.subtype === 'x-pkcs7-mime');
}

/** RFC 8551 §3.2.2 smime-type (RFC 5751 names authEnveloped-data, RFC 8551 §3.4). */
export function smimeType(ct: ContentType): string | undefined {
  return ct.params['smime-type']?.toLowerCase();
}

/**
 * Signs the original with the sender's domain certificate and encrypts it to the recipient's
 * (and, during its announced roll, to its next certificate too: one KeyTransRecipientInfo each,
 * RFC 5652 §6.2.1).
 */
export async function smimeEncrypt(original: TunnelMessage, sender: OwnDomain, recipient: PeerDomain, opts: EncryptOptions = {}): Promise<Buffer> {
  const { chain, key } = smimeKeys(sender);
  const recipientCert = recipient.keys.smime?.chain[0];
  if (!recipientCert) throw new MailmeshError('TUNNEL_NO_KEY', `${recipient.domain} has no S/MIME certificate`);
  const nextCert = recipient.next?.smime?.chain[0];
  const certs = nextCert && nextCert !== recipientCert && usableCertificate(nextCert, opts.now ?? new Date()) ? [recipientCert, nextCert] : [recipientCert];
  const fields = original.entity.fields;
  const signed = await signContent(original.bytes, chain, key, opts.now ?? new Date());
  // RFC 8551 §3.5.2: the signed-data entity, which becomes the content of the EnvelopedData (§3.3).
  const innerEntity = Buffer.from(
    'Content-Type: application/pkcs7-mime; smime-type=signed-data; ' + P7M + '\r\n' +
      'Content-Transfer-Encoding: base64\r\n' + P7M_DISPOSITION + '\r\n\r\n' + encodeBase64Lines(signed),
    'latin1',
  );
  // AEAD to a peer that announces it (no EFAIL: the content cannot be changed without the key), else CBC.
  const aead = recipient.capabilities?.includes(SMIME_AEAD) ?? false;
  const enveloped = aead ? sealAuthEnvelope(innerEntity, certs) : await sealEnvelope(innerEntity, certs);
  const type = aead ? 'authEnveloped-data' : 'enveloped-data'; // RFC 8551 §3.4 / §3.3
  const header = outerHeader(
    fields,
    'smime',
    [`Content-Type: application/pkcs7-mime; smime-type=${type}; ` + P7M, P7M_DISPOSITION, 'Content-Transfer-Encoding: base64'],
    opts,
  );
  return Buffer.concat([header, Buffer.from(encodeBase64Lines(enveloped), 'latin1')]);
}

/** Whether a peer's next certificate can be encrypted to at `now` (RFC 5280 §4.1.2.5 validity); one that cannot must not stop its mail. */
function usableCertificate(pem: string, now: Date): boolean {
  try {
    const c = new x509.X509Certificate(pem);
    return c.notBefore.getTime() <= now.getTime() && now.getTime() < c.notAfter.getTime();
  } catch {
    return false;
  }
}

/**
 * Decrypts an S/MIME tunnel message with our keys (the current ones, then next and retained: the
 * first certificate a recipient info names) and checks the signature against the sender's.
 */
export async function smimeDecrypt(message: TunnelMessage, own: OwnDomain, sender?: PeerDomain, opts: DecryptOptions = {}): Promise<DecryptResult> {
  const ours = keyRing(own).filter((p) => p.keys.smime?.chain.length && p.secrets.smime);
  if (ours.length === 0) throw new MailmeshError('TUNNEL_NO_KEY', `${own.domain} has no S/MIME key`);
  const der = message.der();
  // RFC 5652 §6.2.1: the recipient identifiers decide, before any decryption.
  const recipients = message.cmsRecipients();
  const mine = ours.filter((p) => recipients.some((r) => namesCertificate(r, pkijsCertificate(p.keys.smime!.chain[0]!))));
  if (mine.length === 0) throw new MailmeshError('TUNNEL_NOT_FOR_US', `${recipients.length} key-transport recipients, none is a certificate of ${own.domain}`);
  let failure: unknown;
  for (const p of mine) {
    let opened: ReturnType<typeof openEnvelope>;
    try {
      opened = openEnvelope(der, p.keys.smime!.chain[0]!, p.secrets.smime!.keyPkcs8Pem);
    } catch (e) {
      failure = e;
      continue;
    }
    const { content, cipher, integrity } = opened;
    try {
      return { format: 'smime', cipher, integrity, recipientFingerprint: p.keys.smime!.fingerprint, ...(await unwrapSigned(content, sender, opts.now ?? new Date())) };
    } catch (e) {
      // No oracle: CBC content that was changed may fail the padding check (in openEnvelope) or, with
      // the padding intact, fail here; both must look the same to the sender, or a padding oracle
      // decrypts CBC block by block. So every failure of CBC content is the one error (the cause
      // stays for logs). AEAD content was authenticated before it was read: its errors are its own.
      if (integrity) throw e;
      throw contentFailed(e);
    }
  }
  throw failure;
}

/**
 * A recipient identifier as an operator reads it (RFC 5652 §6.2.1 rid): the certificate's serial
 * number and issuer, or its subject key identifier. Only printable ASCII, at most 200 characters:
 * it comes from the message and goes into an SMTP reply.
 */
export function describeRecipient(r: KeyTransRecipient): string {
  let text: string;
  if (r.ski) text = `subject key identifier ${r.ski.toString('hex')}`;
  else {
    let issuer: string;
    try {
      issuer = new x509.Name(new Uint8Array(r.issuer!)).toString();
    } catch {
      issuer = 'an unreadable name';
    }
    text = `certificate serial ${r.serial!.toString('hex')} issued by ${issuer}`;
  }
  text = text.replace(/[^\x20-\x7e]/g, '?');
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** The decrypted entity: opaque signed-data (RFC 8551 §3.5.2), multipart/signed (§3.5.3), or unsigned content. */
async function unwrapSigned(content: Buffer, sender: PeerDomain | undefined, now: Date): Promise<Omit<DecryptResult, 'format' | 'cipher' | 'integrity'>> {
  const entity = parseEntity(content);
  const ct = parseContentType(fieldValue(entity.fields, 'content-type'));
  const extra = sender ? [sender.keys, ...(sender.others ?? [])].flatMap((k) => k.smime?.chain ?? []) : [];
  if (isPkcs7Mime(ct) && (smimeType(ct) === 'signed-data' || smimeType(ct) === undefined)) {
    const v = await verifySigned(decodeBody(entity), undefined, extra);
    return { inner: v.content, ...(await judge(v.outcome, v.signerDer, sender, now, v.detail)) };
  }
  const protocol = ct.params.protocol?.toLowerCase();
  if (ct.type === 'multipart' && ct.subtype === 'signed' && (protocol === 'application/pkcs7-signature' || protocol === 'application/x-pkcs7-signature')) {
    const boundary = ct.params.boundary;
    if (!boundary) throw malformed('multipart/signed without boundary');
    const [signedPart, sigPart] = splitMultipart(entity.body, boundary);
    if (!signedPart || !sigPart) throw malformed('multipart/signed needs two parts');
    const v = await verifySigned(decodeBody(parseEntity(sigPart)), signedPart, extra);
    return { inner: Buffer.from(signedPart), ...(await judge(v.outcome, v.signerDer, sender, now, v.detail)) };
  }
  return { inner: content, signature: 'absent' };
}

/**
 * Matches the signer to the sender's keys (current, next, previous): a leaf's fingerprint, or a
 * certificate one of its domain CAs issued for the domain. A signer that is none of them is
 * key-changed when the sender has keys, else unknown-signer.
 */
async function judge(
  outcome: 'verified' | 'failed' | 'absent' | 'no-certificate',
  signerDer: Buffer | undefined,
  sender: PeerDomain | undefined,
  now: Date,
  detail: string | undefined,
): Promise<Pick<DecryptResult, 'signature' | 'signerFingerprint' | 'signerDomain' | 'detail'>> {
  if (outcome === 'absent') return { signature: 'absent' };
  if (!signerDer) return { signature: 'unknown-signer', detail };
  const signerFingerprint = createHash('sha256').update(signerDer).digest('hex');
  const known = sender ? await isSendersCertificate(signerDer, signerFingerprint, sender, now) : false;
  if (!known) return { signature: hasKeys(sender) ? 'key-changed' : 'unknown-signer', signerFingerprint, detail: detail ?? 'the signer is not a key of the sender domain' };
  const base = { signerFingerprint, signerDomain: sender!.domain };
  return outcome === 'verified' ? { signature: 'valid', ...base } : { signature: 'invalid', ...base, detail };
}

async function isSendersCertificate(der: Buffer, fingerprint: string, sender: PeerDomain, now: Date): Promise<boolean> {
  for (const keys of [sender.keys, ...(sender.others ?? [])]) {
    const smime = keys.smime;
    if (!smime) continue;
    if (smime.fingerprint.toLowerCase() === fingerprint) return true;
    // A new leaf from the same domain CA (e.g. after a rollover the directory has not seen yet).
    const cas = smime.chain.slice(1).map((p) => new x509.X509Certificate(p));
    if (cas.length === 0) continue;
    try {
      await validateSmimeChain([new x509.X509Certificate(new Uint8Array(der)), ...cas], sender.domain, now);
      return true;
    } catch {
      continue;
    }
  }
  return false;
}
