/**
 * CMS decryption for the S/MIME tunnel (sending: ./seal.ts).
 * Receive: EnvelopedData (RFC 5652 §6) with RSAES-OAEP or RSAES-PKCS1-v1_5 key transport
 * (RFC 3560, RFC 3370 §4.2.1) and AES-CBC content (RFC 3565), and AuthEnvelopedData (RFC 5083)
 * with AES-GCM (RFC 5084), read with asn1js (pkijs has no AuthEnvelopedData) and decrypted with
 * node:crypto. 3DES, RC2, DES and the like, and RSA keys under 2048 bits, are refused as weak
 * (TUNNEL_WEAK_ALGORITHM, RFC 8551 §2.7).
 */
import { constants, createDecipheriv, createPrivateKey, privateDecrypt, type KeyObject } from 'node:crypto';
import type * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import { MailmeshError } from '../../errors.js';
import {
  algorithm,
  bad,
  checkRsaBits,
  CONTENT_CIPHERS,
  expectUniversal,
  HASHES,
  isTagged,
  items,
  octets,
  OID,
  oidOf,
  pkijsCertificate,
  readContentInfo,
  smallInt,
  weak,
  WEAK_CIPHERS,
} from './asn1.js';
import { ParsedCache } from '../cache.js';
import { rsaPkcs1v15DecryptKey } from './pkcs1.js';

export interface KeyTransRecipient {
  /** IssuerAndSerialNumber (RFC 5652 §10.2.4): the issuer Name's DER and the serial's octets. */
  issuer?: Buffer;
  serial?: Buffer;
  /** Or the subjectKeyIdentifier. */
  ski?: Buffer;
  keyAlgorithm: { oid: string; params?: asn1js.AsnType };
  encryptedKey: Buffer;
}

export interface ParsedEnvelope {
  kind: 'enveloped' | 'authEnveloped';
  /** KeyTransRecipientInfo only (RFC 5652 §6.2.1); other kinds cannot be for an RSA domain key. */
  recipients: KeyTransRecipient[];
  contentAlgorithm: { oid: string; params?: asn1js.AsnType };
  encrypted: Buffer;
  /** AuthEnvelopedData: the DER of authAttrs as SET OF (RFC 5083 §2.1: the AAD), and the MAC. */
  aad?: Buffer;
  mac?: Buffer;
}

/**
 * RFC 5652 §6.1 EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
 *   encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }
 * RFC 5083 §2.1 AuthEnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
 *   authEncryptedContentInfo, authAttrs [1] OPTIONAL, mac OCTET STRING, unauthAttrs [2] OPTIONAL }
 */
export function parseEnvelope(der: Uint8Array): ParsedEnvelope {
  const info = readContentInfo(der);
  const kind = info.type === OID.envelopedData ? 'enveloped' : info.type === OID.authEnvelopedData ? 'authEnveloped' : undefined;
  if (!kind) throw new MailmeshError('TUNNEL_UNSUPPORTED', `CMS content type ${info.type}`);
  const seq = items(expectUniversal(info.content, 16, kind), kind);
  let i = 1; // after version
  smallInt(seq[0], `${kind} version`);
  if (isTagged(seq[i], 0)) i++; // originatorInfo
  const recipientInfos = items(expectUniversal(seq[i++], 17, 'recipientInfos'), 'recipientInfos');
  // RFC 5652 §6.1 EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OPTIONAL }
  const eci = items(expectUniversal(seq[i++], 16, 'EncryptedContentInfo'), 'EncryptedContentInfo');
  oidOf(eci[0], 'EncryptedContentInfo contentType');
  const contentAlgorithm = algorithm(eci[1], 'contentEncryptionAlgorithm');
  if (!isTagged(eci[2], 0)) throw bad('EncryptedContentInfo: detached content is not supported');
  const encrypted = octets(eci[2], 'encryptedContent');
  const env: ParsedEnvelope = { kind, recipients: recipientInfos.flatMap(keyTrans), contentAlgorithm, encrypted };
  if (kind === 'authEnveloped') {
    if (isTagged(seq[i], 1)) {
      // RFC 5083 §2.1: the AAD is the DER of authAttrs with an EXPLICIT SET OF tag (0x31) instead of [1].
      const aad = Buffer.from(seq[i++]!.valueBeforeDecodeView);
      aad[0] = 0x31;
      env.aad = aad;
    }
    env.mac = octets(expectUniversal(seq[i], 4, 'mac'), 'mac');
  }
  return env;
}

/** RFC 5652 §6.2.1 KeyTransRecipientInfo ::= SEQUENCE { version, rid, keyEncryptionAlgorithm, encryptedKey }. */
function keyTrans(ri: asn1js.AsnType): KeyTransRecipient[] {
  if (ri.idBlock.tagClass !== 1 || ri.idBlock.tagNumber !== 16) return []; // kari [1], kekri [2], pwri [3], ori [4]
  const [version, rid, alg, key] = items(ri, 'KeyTransRecipientInfo');
  smallInt(version, 'KeyTransRecipientInfo version');
  const out: KeyTransRecipient = { keyAlgorithm: algorithm(alg, 'keyEncryptionAlgorithm'), encryptedKey: octets(expectUniversal(key, 4, 'encryptedKey'), 'encryptedKey') };
  if (isTagged(rid, 0)) out.ski = octets(rid, 'subjectKeyIdentifier');
  else {
    // RFC 5652 §10.2.4 IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }
    const [issuer, serial] = items(expectUniversal(rid, 16, 'IssuerAndSerialNumber'), 'IssuerAndSerialNumber');
    out.issuer = Buffer.from(expectUniversal(issuer, 16, 'issuer').valueBeforeDecodeView);
    out.serial = Buffer.from((expectUniversal(serial, 2, 'serialNumber') as asn1js.Integer).valueBlock.valueHexView);
  }
  return [out];
}

function skiOf(cert: pkijs.Certificate): Buffer | undefined {
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  const v = ext?.parsedValue as asn1js.OctetString | undefined;
  return v ? Buffer.from(v.valueBlock.valueHexView) : undefined;
}

/** RFC 5652 §6.2.1: does this recipient identifier name the certificate? */
export function namesCertificate(r: KeyTransRecipient, cert: pkijs.Certificate): boolean {
  if (r.ski) return skiOf(cert)?.equals(r.ski) ?? false;
  const issuer = Buffer.from(cert.issuer.toSchema().toBER(false));
  const serial = Buffer.from(cert.serialNumber.valueBlock.valueHexView);
  return !!r.issuer?.equals(issuer) && !!r.serial?.equals(serial);
}

/** RFC 3560 §2.1 RSAES-OAEP-params: hash [0], maskGen [1] (MGF1 with the same hash), pSource [2]; defaults SHA-1, empty label. */
function oaepHash(params: asn1js.AsnType | undefined): { hash: string; label?: Buffer } {
  let hash = OID.sha1 as string;
  let mgfHash = OID.sha1 as string;
  let label: Buffer | undefined;
  for (const p of params ? items(expectUniversal(params, 16, 'RSAES-OAEP-params'), 'RSAES-OAEP-params') : []) {
    const inner = items(p, 'RSAES-OAEP-params field')[0];
    if (isTagged(p, 0)) hash = algorithm(inner, 'OAEP hash').oid;
    else if (isTagged(p, 1)) {
      const mgf = algorithm(inner, 'OAEP maskGen');
      if (mgf.oid !== OID.mgf1) throw new MailmeshError('TUNNEL_UNSUPPORTED', `mask generation ${mgf.oid}`);
      mgfHash = algorithm(mgf.params, 'MGF1 hash').oid;
    } else if (isTagged(p, 2)) {
      const src = algorithm(inner, 'OAEP pSource');
      if (src.oid !== OID.pSpecified) throw new MailmeshError('TUNNEL_UNSUPPORTED', `OAEP pSource ${src.oid}`);
      label = octets(expectUniversal(src.params, 4, 'OAEP label'), 'OAEP label');
    }
  }
  const name = HASHES[hash];
  if (!name || hash !== mgfHash) throw new MailmeshError('TUNNEL_UNSUPPORTED', `OAEP hash ${hash} with MGF1 ${mgfHash}`);
  return { hash: name, label: label && label.length > 0 ? label : undefined };
}

/** Key transport: the content-encryption key for this recipient (RFC 3560 §2.3, RFC 3370 §4.2.1). */
function unwrapKey(r: KeyTransRecipient, key: KeyObject, keyLength: number): Uint8Array {
  checkRsaBits(key.asymmetricKeyDetails?.modulusLength, 'key transport');
  if (r.keyAlgorithm.oid === OID.rsaEncryption) return rsaPkcs1v15DecryptKey(key, r.encryptedKey, keyLength);
  if (r.keyAlgorithm.oid !== OID.rsaesOaep) throw new MailmeshError('TUNNEL_UNSUPPORTED', `key transport ${r.keyAlgorithm.oid}`);
  const { hash, label } = oaepHash(r.keyAlgorithm.params);
  try {
    return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: label }, r.encryptedKey);
  } catch (e) {
    throw new MailmeshError('TUNNEL_DECRYPT_FAILED', 'RSA-OAEP key transport failed', { cause: e });
  }
}

/** The content cipher and its IV/nonce: RFC 3565 §4.1 (IV OCTET STRING), RFC 5084 §3.2 GCMParameters. */
function contentCipher(env: ParsedEnvelope): { cipher: string; keyLength: number; iv: Buffer; tagLength?: number } {
  const refused = WEAK_CIPHERS[env.contentAlgorithm.oid];
  if (refused) throw weak(`content encryption ${refused}`);
  const c = CONTENT_CIPHERS[env.contentAlgorithm.oid];
  if (!c) throw new MailmeshError('TUNNEL_UNSUPPORTED', `content encryption ${env.contentAlgorithm.oid}`);
  if (c.aead !== (env.kind === 'authEnveloped')) throw new MailmeshError('TUNNEL_UNSUPPORTED', `${c.cipher} in ${env.kind}Data`);
  if (!c.aead) {
    const iv = octets(expectUniversal(env.contentAlgorithm.params, 4, 'IV'), 'IV');
    if (iv.length !== 16) throw bad('IV of the wrong length');
    return { ...c, iv };
  }
  // GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 } (RFC 5084 §3.2)
  const [nonce, icv] = items(expectUniversal(env.contentAlgorithm.params, 16, 'GCMParameters'), 'GCMParameters');
  const iv = octets(expectUniversal(nonce, 4, 'GCM nonce'), 'GCM nonce');
  const tagLength = icv ? smallInt(icv, 'GCM ICV length') : 12;
  if (iv.length < 1 || iv.length > 64 || tagLength < 12 || tagLength > 16 || env.mac?.length !== tagLength) throw bad('bad GCM parameters or MAC length');
  return { ...c, iv, tagLength };
}

/** The domains' private keys by their PEM, read once (../cache.ts). */
const decryptionKeys = new ParsedCache<KeyObject>();

/**
 * Decrypts an EnvelopedData or AuthEnvelopedData ContentInfo (DER/BER) with the domain's
 * certificate and private key. Errors: TUNNEL_MALFORMED, TUNNEL_UNSUPPORTED, TUNNEL_NOT_FOR_US,
 * TUNNEL_DECRYPT_FAILED (a bad key transport padding also ends here, through implicit rejection).
 */
export function openEnvelope(der: Uint8Array, certPem: string, keyPkcs8Pem: string): { content: Buffer; cipher: string; integrity: boolean } {
  const env = parseEnvelope(der);
  const cert = pkijsCertificate(certPem);
  const mine = env.recipients.filter((r) => namesCertificate(r, cert));
  if (mine.length === 0) throw new MailmeshError('TUNNEL_NOT_FOR_US', `${env.recipients.length} key-transport recipients, none is the domain certificate`);
  const c = contentCipher(env);
  const key = decryptionKeys.get(keyPkcs8Pem, (pem) => createPrivateKey(pem));
  let last: unknown;
  for (const r of mine) {
    try {
      const cek = unwrapKey(r, key, c.keyLength);
      return { content: decryptContent(env, c, cek), cipher: c.cipher, integrity: c.tagLength !== undefined };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

function decryptContent(env: ParsedEnvelope, c: ReturnType<typeof contentCipher>, cek: Uint8Array): Buffer {
  try {
    if (c.tagLength === undefined) {
      const d = createDecipheriv(c.cipher, cek, c.iv);
      return Buffer.concat([d.update(env.encrypted), d.final()]);
    }
    const d = createDecipheriv(c.cipher as 'aes-256-gcm', cek, c.iv, { authTagLength: c.tagLength });
    if (env.aad) d.setAAD(env.aad);
    d.setAuthTag(env.mac!);
    return Buffer.concat([d.update(env.encrypted), d.final()]);
  } catch (e) {
    if (e instanceof MailmeshError) throw e;
    throw contentFailed(e);
  }
}

/** The one error for content that does not decrypt (a bad CBC padding, a GCM tag that does not match). */
export function contentFailed(cause: unknown): MailmeshError {
  return new MailmeshError('TUNNEL_DECRYPT_FAILED', 'content decryption failed', { cause });
}
