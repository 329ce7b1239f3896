/**
 * CMS SignedData (RFC 5652 §5) for the S/MIME tunnel, with pkijs: sign with RSA PKCS#1 v1.5 and
 * SHA-256 (RFC 8551 §2.1–2.2, RFC 5754), signed attributes contentType, messageDigest and
 * signingTime (RFC 5652 §11), the certificate chain included; verify an encapsulated or a
 * detached signature.
 */
import { createHash, createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MailmeshError } from '../../errors.js';
import { ParsedCache } from '../cache.js';
import { bad, checkRsaBits, contentInfoDer, engine, isTagged, items, octets, OID, pkijsCertificate, readContentInfo, weak, WEAK_SIGNATURE_ALGORITHMS } from './asn1.js';

/** The domains' signing keys by their PEM, imported once (../cache.ts). */
const signingKeys = new ParsedCache<Promise<webcrypto.CryptoKey>>();

/** SignedData with the content encapsulated (RFC 5652 §5.2), as a ContentInfo in DER. */
export async function signContent(content: Uint8Array, chainPem: string[], keyPkcs8Pem: string, now: Date): Promise<Buffer> {
  const certs = chainPem.map(pkijsCertificate);
  const leaf = certs[0];
  if (!leaf) throw new MailmeshError('TUNNEL_NO_KEY', 'no signing certificate');
  const key = await signingKeys.get(keyPkcs8Pem, (pem) => {
    const pkcs8 = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
    return webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  });
  const attr = (type: string, value: asn1js.AsnType) => new pkijs.Attribute({ type, values: [value] });
  const signer = new pkijs.SignerInfo({
    version: 1,
    // RFC 5652 §10.2.4
    sid: new pkijs.IssuerAndSerialNumber({ issuer: leaf.issuer, serialNumber: leaf.serialNumber }),
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: [
        attr(OID.contentType, new asn1js.ObjectIdentifier({ value: OID.data })),
        attr(OID.signingTime, new asn1js.UTCTime({ valueDate: now })),
        attr(OID.messageDigest, new asn1js.OctetString({ valueHex: createHash('sha256').update(content).digest() })),
      ],
    }),
  });
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data, eContent: new asn1js.OctetString({ valueHex: new Uint8Array(content) }) }),
    signerInfos: [signer],
    certificates: certs,
  });
  await sd.sign(key, 0, 'SHA-256', undefined, engine);
  return contentInfoDer(OID.signedData, sd);
}

export interface SignedVerification {
  /** The signed content (encapsulated, or the detached content given). */
  content: Buffer;
  /** 'absent' when the SignedData has no SignerInfo. */
  outcome: 'verified' | 'failed' | 'absent' | 'no-certificate';
  /** The DER of the certificate that signed, when it was found. */
  signerDer?: Buffer;
  detail?: string;
}

/**
 * Verifies the first SignerInfo of a SignedData ContentInfo (RFC 5652 §5.6). `detached` is the
 * content of a multipart/signed (RFC 8551 §3.5.3); `extraCerts` are added for a signer whose
 * certificate the SignedData does not carry. Chains are not checked here: the caller matches
 * the signer to a domain record. MD5 or SHA-1 digests (RFC 8551 §2.1) and RSA signer keys under
 * 2048 bits (§2.7, §4.1) are refused: TUNNEL_WEAK_ALGORITHM.
 */
export async function verifySigned(der: Uint8Array, detached: Uint8Array | undefined, extraCerts: string[]): Promise<SignedVerification> {
  const info = readContentInfo(der);
  if (info.type !== OID.signedData) throw new MailmeshError('TUNNEL_UNSUPPORTED', `CMS content type ${info.type}, not signed data`);
  // RFC 5652 §5.1: SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, certificates [0], crls [1], signerInfos }
  const eci = items(items(info.content, 'SignedData')[2], 'EncapsulatedContentInfo');
  const eContent = isTagged(eci[1], 0) ? octets(items(eci[1], 'eContent')[0], 'eContent') : undefined;
  const content = eContent ?? (detached ? Buffer.from(detached) : undefined);
  if (!content) throw bad('SignedData without content');
  let sd: pkijs.SignedData;
  try {
    sd = new pkijs.SignedData({ schema: info.content });
  } catch (e) {
    throw new MailmeshError('TUNNEL_MALFORMED', `SignedData: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (sd.signerInfos.length === 0) return { content, outcome: 'absent' };
  // RFC 5652 §5.3 SignerInfo: digestAlgorithm, and signatureAlgorithm (which may name the digest too).
  const si = sd.signerInfos[0]!;
  for (const alg of [si.digestAlgorithm.algorithmId, si.signatureAlgorithm.algorithmId]) {
    const name = WEAK_SIGNATURE_ALGORITHMS[alg];
    if (name) throw weak(`signature with ${name}`);
  }
  sd.certificates = [...(sd.certificates ?? []), ...extraCerts.map(pkijsCertificate)];
  // pkijs reads the encapsulated content itself; give it the concatenated octets in case they were chunked (X.690 §8.7.3).
  if (eContent) sd.encapContentInfo.eContent = new asn1js.OctetString({ valueHex: new Uint8Array(eContent) });
  try {
    const r = await sd.verify({ signer: 0, data: new Uint8Array(content).buffer, checkChain: false, extendedMode: true }, engine);
    const signerDer = r.signerCertificate ? Buffer.from(r.signerCertificate.toSchema().toBER(false)) : undefined;
    if (signerDer) checkSignerKey(signerDer);
    return { content, outcome: r.signatureVerified === true ? 'verified' : 'failed', signerDer };
  } catch (e) {
    if (e instanceof MailmeshError) throw e;
    // pkijs throws SignedDataVerifyError; code 3: the signer's certificate is not there.
    const err = e as { code?: number; message?: string; signerCertificate?: pkijs.Certificate | null };
    if (err.code === 3) return { content, outcome: 'no-certificate', detail: err.message };
    const signerDer = err.signerCertificate ? Buffer.from(err.signerCertificate.toSchema().toBER(false)) : undefined;
    return { content, outcome: 'failed', signerDer, detail: err.message ?? String(e) };
  }
}

/** RFC 8551 §4.1: an RSA signer key under 2048 bits is weak. */
function checkSignerKey(der: Buffer): void {
  let key;
  try {
    key = new X509Certificate(der).publicKey;
  } catch {
    return; // pkijs read it; node:crypto not: nothing to say about its size
  }
  checkRsaBits(key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined, 'signer certificate');
}
