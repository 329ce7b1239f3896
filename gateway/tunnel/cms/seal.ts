/**
 * CMS encryption for the S/MIME tunnel (receiving: ./envelope.ts).
 * - sealAuthEnvelope: AuthEnvelopedData (RFC 5083) with AES-256-GCM (RFC 5084), for peers whose
 *   signed record announces it: the content cannot be changed without the key (no EFAIL).
 *   pkijs has no AuthEnvelopedData, so it is built here with asn1js.
 * - sealEnvelope: EnvelopedData (RFC 5652 §6) with AES-256-CBC (RFC 3565), built with pkijs, for
 *   peers that do not announce it (older records); CBC has no integrity.
 * Key transport is RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 3560, RFC 4055 §4, RFC 8017 §7.1)
 * in both; RSA keys under 2048 bits are refused (RFC 8551 §2.7, TUNNEL_WEAK_ALGORITHM).
 */
import { constants, createCipheriv, publicEncrypt, randomBytes, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { algorithmDer, checkRsaBits, contentInfoDer, engine, octetsDer, OID, pkijsCertificate, tagged } from './asn1.js';

/** RFC 5084 §3.2: a 12-octet nonce is recommended; we send the full 16-octet ICV. */
const GCM_NONCE_LENGTH = 12;
const GCM_ICV_LENGTH = 16;

function recipientKeyBits(recipientCertPem: string): void {
  const key = new X509Certificate(recipientCertPem).publicKey;
  checkRsaBits(key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined, 'recipient certificate');
}

/**
 * RFC 8551 §2.7, §3.3: EnvelopedData to one certificate or several (one KeyTransRecipientInfo
 * each, RFC 5652 §6.2.1: e.g. a peer's current and announced next), RSAES-OAEP with SHA-256
 * (RFC 4055 §4) and AES-256-CBC.
 */
export async function sealEnvelope(content: Uint8Array, recipientCertPems: string | readonly string[]): Promise<Buffer> {
  const pems = typeof recipientCertPems === 'string' ? [recipientCertPems] : recipientCertPems;
  const env = new pkijs.EnvelopedData();
  for (const pem of pems) {
    recipientKeyBits(pem);
    env.addRecipientByCertificate(pkijsCertificate(pem), { oaepHashAlgorithm: 'SHA-256' }, 1, engine);
  }
  const buf = new Uint8Array(content).buffer;
  await env.encrypt({ name: 'AES-CBC', length: 256 } as Algorithm, buf, engine);
  return contentInfoDer(OID.envelopedData, env);
}

/**
 * RFC 5652 §6.2.1 KeyTransRecipientInfo ::= SEQUENCE { version CMSVersion (0 with
 * IssuerAndSerialNumber), rid, keyEncryptionAlgorithm, encryptedKey OCTET STRING }, with
 * RFC 4055 §4.1 RSAES-OAEP-params ::= SEQUENCE { hashFunc [0] sha256, maskGenFunc [1] mgf1 with
 * sha256, pSourceFunc [2] DEFAULT (empty label) }.
 */
function keyTransRecipient(cek: Buffer, recipientCertPem: string): asn1js.Sequence {
  const cert = pkijsCertificate(recipientCertPem);
  const sha256 = () => algorithmDer(OID.sha256, null);
  const oaepParams = new asn1js.Sequence({ value: [tagged(0, [sha256()]), tagged(1, [algorithmDer(OID.mgf1, sha256())])] });
  const encryptedKey = publicEncrypt({ key: recipientCertPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
  return new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      // RFC 5652 §10.2.4 IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber }
      new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }).toSchema(),
      algorithmDer(OID.rsaesOaep, oaepParams),
      octetsDer(encryptedKey),
    ],
  });
}

/**
 * RFC 8551 §3.4 (authEnveloped-data), RFC 5083 §2.1:
 *   AuthEnvelopedData ::= SEQUENCE { version CMSVersion (always 0), originatorInfo [0] OPTIONAL,
 *     recipientInfos, authEncryptedContentInfo EncryptedContentInfo, authAttrs [1] OPTIONAL,
 *     mac MessageAuthenticationCode, unauthAttrs [2] OPTIONAL }
 * with RFC 5652 §6.1 EncryptedContentInfo ::= SEQUENCE { contentType id-data,
 *   contentEncryptionAlgorithm id-aes256-GCM with GCMParameters, encryptedContent [0] IMPLICIT }
 * and RFC 5084 §3.2 GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }.
 * No authAttrs (RFC 5083 §2.1: optional for id-data), so the GCM AAD is empty (RFC 5083 §2.2);
 * the mac is the GCM tag (RFC 5084 §3.1). A fresh key and nonce for every message. One
 * KeyTransRecipientInfo per certificate (RFC 5652 §6.2.1), all for the same content key.
 */
export function sealAuthEnvelope(content: Uint8Array, recipientCertPems: string | readonly string[]): Buffer {
  const pems = typeof recipientCertPems === 'string' ? [recipientCertPems] : recipientCertPems;
  for (const pem of pems) recipientKeyBits(pem);
  const cek = randomBytes(32);
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', cek, nonce, { authTagLength: GCM_ICV_LENGTH });
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()]);
  const gcmParams = new asn1js.Sequence({ value: [octetsDer(nonce), new asn1js.Integer({ value: GCM_ICV_LENGTH })] });
  const aed = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      new asn1js.Set({ value: pems.map((pem) => keyTransRecipient(cek, pem)) }),
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.data }), algorithmDer(OID.aes256Gcm, gcmParams), octetsDer(encrypted, 0)] }),
      octetsDer(cipher.getAuthTag()),
    ],
  });
  return contentInfoDer(OID.authEnvelopedData, { toSchema: () => aed });
}
