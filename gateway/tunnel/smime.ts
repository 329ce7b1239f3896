/**
 * The S/MIME tunnel (RFC 8551): `application/pkcs7-mime; smime-type=authEnveloped-data` (§3.4,
 * AES-256-GCM, to peers whose record announces SMIME_AEAD) or `smime-type=enveloped-data` (§3.3,
 * AES-256-CBC, to the others) around an `application/pkcs7-mime; smime-type=signed-data` entity
 * (§3.5.2, signing then encrypting as §3.6 describes) whose encapsulated content is the whole
 * original message. This is what `openssl cms -decrypt` followed by `openssl cms -verify` reads.
 */
import { createHash } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { MailmeshError } from '../../directory/errors.js';
import { SMIME_AEAD } from '../../directory/record.js';
import { validateSmimeChain } from '../../directory/smime.js';
import { contentFailed, openEnvelope } from './cms/envelope.js';
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
import type { DecryptOptions, DecryptResult, EncryptOptions, OwnDomain, PeerDomain } from './types.js';

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

/** Signs the original with the sender's domain certificate and encrypts it to the recipient's. */
export async function smimeEncrypt(original: Buffer, sender: OwnDomain, recipient: PeerDomain, opts: EncryptOptions = {}): Promise<Buffer> {
  const { chain, key } = smimeKeys(sender);
  const recipientCert = recipient.keys.smime?.chain[0];
  if (!recipientCert) throw new MailmeshError('TUNNEL_NO_KEY', `${recipient.domain} has no S/MIME certificate`);
  const fields = parseEntity(original).fields;
  const signed = await signContent(original, chain, key, opts.now ?? new Date());
  // RFC 8551 §3.5.2: the signed-data entity, which becomes the content of the EnvelopedData (§3.3).
  const innerEntity = Buffer.from(
    'Content-Type: application/pkcs7-mime; smime-type=signed-data; ' + P7M + '\r\n' +
      'Content-Transfer-Encoding: base64\r\n' + P7M_DISPOSITION + '\r\n\r\n' + encodeBase64Lines(signed),
    'latin1',
  );
  // AEAD to a peer that announces it (no EFAIL: the content cannot be changed without the key), else CBC.
  const aead = recipient.capabilities?.includes(SMIME_AEAD) ?? false;
  const enveloped = aead ? sealAuthEnvelope(innerEntity, recipientCert) : await sealEnvelope(innerEntity, recipientCert);
  const type = aead ? 'authEnveloped-data' : 'enveloped-data'; // RFC 8551 §3.4 / §3.3
  const header = outerHeader(
    fields,
    'smime',
    [`Content-Type: application/pkcs7-mime; smime-type=${type}; ` + P7M, P7M_DISPOSITION, 'Content-Transfer-Encoding: base64'],
    opts,
  );
  return Buffer.concat([header, Buffer.from(encodeBase64Lines(enveloped), 'latin1')]);
}

/** Decrypts an S/MIME tunnel message with our domain key and checks the signature against the sender's record. */
export async function smimeDecrypt(message: Buffer, own: OwnDomain, sender?: PeerDomain, opts: DecryptOptions = {}): Promise<DecryptResult> {
  const { chain, key } = smimeKeys(own);
  const outer = parseEntity(message);
  const ct = parseContentType(fieldValue(outer.fields, 'content-type'));
  const type = smimeType(ct);
  if (!isPkcs7Mime(ct) || (type !== undefined && type !== 'enveloped-data' && type !== 'authenveloped-data')) {
    throw malformed(`not an S/MIME enveloped message (${ct.type}/${ct.subtype})`);
  }
  const { content, cipher, integrity } = openEnvelope(decodeBody(outer), chain[0]!, key);
  try {
    return { format: 'smime', cipher, integrity, ...(await unwrapSigned(content, sender, opts.now ?? new Date())) };
  } catch (e) {
    // No oracle: CBC content that was changed may fail the padding check (in openEnvelope) or, with
    // the padding intact, fail here; both must look the same to the sender, or a padding oracle
    // decrypts CBC block by block. So every failure of CBC content is the one error (the cause
    // stays for logs). AEAD content was authenticated before it was read: its errors are its own.
    if (integrity) throw e;
    throw contentFailed(e);
  }
}

/** The decrypted entity: opaque signed-data (RFC 8551 §3.5.2), multipart/signed (§3.5.3), or unsigned content. */
async function unwrapSigned(content: Buffer, sender: PeerDomain | undefined, now: Date): Promise<Omit<DecryptResult, 'format' | 'cipher' | 'integrity'>> {
  const entity = parseEntity(content);
  const ct = parseContentType(fieldValue(entity.fields, 'content-type'));
  const extra = sender?.keys.smime?.chain ?? [];
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

/** Matches the signer to the sender's record: the leaf's fingerprint, or a certificate its domain CA issued for the domain. */
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
  if (!known) return { signature: 'unknown-signer', signerFingerprint, detail: detail ?? 'the signer is not a key of the sender domain' };
  const base = { signerFingerprint, signerDomain: sender!.domain };
  return outcome === 'verified' ? { signature: 'valid', ...base } : { signature: 'invalid', ...base, detail };
}

async function isSendersCertificate(der: Buffer, fingerprint: string, sender: PeerDomain, now: Date): Promise<boolean> {
  const smime = sender.keys.smime;
  if (!smime) return false;
  if (smime.fingerprint.toLowerCase() === fingerprint) return true;
  // A new leaf from the same domain CA (e.g. after a rollover the directory has not seen yet).
  const cas = smime.chain.slice(1).map((p) => new x509.X509Certificate(p));
  if (cas.length === 0) return false;
  try {
    await validateSmimeChain([new x509.X509Certificate(new Uint8Array(der)), ...cas], sender.domain, now);
    return true;
  } catch {
    return false;
  }
}
