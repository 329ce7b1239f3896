/** BER reading and DER building helpers for CMS (X.690), and the object identifiers and algorithm policy the tunnel uses. */
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MailmeshError } from '../../errors.js';
import { pemToDer } from '../../../directory/smime.js';
import { ParsedCache } from '../cache.js';

/** One crypto engine on Node's WebCrypto, passed to every pkijs call (no global engine). */
export const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });

export const OID = {
  data: '1.2.840.113549.1.7.1', // RFC 5652 §4
  signedData: '1.2.840.113549.1.7.2', // RFC 5652 §5
  envelopedData: '1.2.840.113549.1.7.3', // RFC 5652 §6
  authEnvelopedData: '1.2.840.113549.1.9.16.1.23', // RFC 5083 §1
  rsaEncryption: '1.2.840.113549.1.1.1', // RFC 8017 App. C (RSAES-PKCS1-v1_5 key transport in CMS, RFC 3370 §4.2.1)
  rsaesOaep: '1.2.840.113549.1.1.7', // RFC 8017 App. C, RFC 3560 §2.1
  mgf1: '1.2.840.113549.1.1.8',
  pSpecified: '1.2.840.113549.1.1.9',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  aes256Gcm: '2.16.840.1.101.3.4.1.46', // RFC 5084 §3.2
  contentType: '1.2.840.113549.1.9.3', // RFC 5652 §11.1
  messageDigest: '1.2.840.113549.1.9.4', // RFC 5652 §11.2
  signingTime: '1.2.840.113549.1.9.5', // RFC 5652 §11.3
  subjectKeyIdentifier: '2.5.29.14', // RFC 5280 §4.2.1.2
} as const;

/** RFC 3565 §4.1 (AES-CBC) and RFC 5084 §3.2 (AES-GCM): OID → cipher; the content ciphers RFC 8551 §2.7 keeps. */
export const CONTENT_CIPHERS: Record<string, { cipher: string; keyLength: number; aead: boolean }> = {
  '2.16.840.1.101.3.4.1.2': { cipher: 'aes-128-cbc', keyLength: 16, aead: false },
  '2.16.840.1.101.3.4.1.22': { cipher: 'aes-192-cbc', keyLength: 24, aead: false },
  '2.16.840.1.101.3.4.1.42': { cipher: 'aes-256-cbc', keyLength: 32, aead: false },
  '2.16.840.1.101.3.4.1.6': { cipher: 'aes-128-gcm', keyLength: 16, aead: true },
  '2.16.840.1.101.3.4.1.26': { cipher: 'aes-192-gcm', keyLength: 24, aead: true },
  [OID.aes256Gcm]: { cipher: 'aes-256-gcm', keyLength: 32, aead: true },
};

/**
 * Content ciphers refused as weak (RFC 8551 §2.7: 3DES is "SHOULD-" for receiving, the rest are
 * gone): 64-bit blocks (Sweet32), 40–56-bit keys, RC4. Refused with TUNNEL_WEAK_ALGORITHM.
 */
export const WEAK_CIPHERS: Record<string, string> = {
  '1.2.840.113549.3.7': 'des-ede3-cbc', // RFC 3370 §5.1
  '1.2.840.113549.3.2': 'rc2-cbc', // RFC 3370 §5.2
  '1.3.14.3.2.7': 'des-cbc', // RFC 8018 App. B.2.1
  '1.2.840.113549.3.4': 'rc4',
  '1.2.840.113549.3.9': 'rc5-cbc-pad', // RFC 8018 App. B.2.4
  '1.2.840.113533.7.66.10': 'cast5-cbc', // RFC 2984 §2.1
  '1.3.6.1.4.1.188.7.1.1.2': 'idea-cbc', // RFC 3058 §2
};

export const HASHES: Record<string, string> = { [OID.sha1]: 'sha1', [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };

/**
 * Digests refused in signatures (RFC 8551 §2.1: MD5 and SHA-1 are not to be relied on; collisions
 * are practical), as digestAlgorithm or inside the signatureAlgorithm (RFC 3370 §3, RFC 5754, RFC 5758).
 */
export const WEAK_SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.2.2': 'md2',
  '1.2.840.113549.2.5': 'md5',
  [OID.sha1]: 'sha1',
  '1.2.840.113549.1.1.2': 'md2WithRSAEncryption',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10040.4.3': 'dsa-with-sha1',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
};

/** RFC 8551 §2.7 / §4.1: RSA key transport and signature keys need 2048 bits at least. */
export const MIN_RSA_BITS = 2048;

export function weak(detail: string): MailmeshError {
  return new MailmeshError('TUNNEL_WEAK_ALGORITHM', detail);
}

/** Refuses an RSA key under MIN_RSA_BITS; `bits` undefined (not RSA) passes. */
export function checkRsaBits(bits: number | undefined, what: string): void {
  if (bits !== undefined && bits < MIN_RSA_BITS) throw weak(`${what}: RSA ${bits} bits (at least ${MIN_RSA_BITS} needed)`);
}

export function bad(detail: string): MailmeshError {
  return new MailmeshError('TUNNEL_MALFORMED', detail);
}

// X.690 §8: resource limits for untrusted input; a streamed (chunked) OCTET STRING has one node per chunk.
const LIMITS = { maxDepth: 64, maxNodes: 1_000_000, parseEmbedded: false };

/** X.690 §8.1: one BER element filling the whole input. */
export function readBer(data: Uint8Array, what: string): asn1js.AsnType {
  let res: asn1js.FromBerResult;
  try {
    res = asn1js.fromBER(data, LIMITS);
  } catch (e) {
    throw new MailmeshError('TUNNEL_MALFORMED', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (res.offset === -1 || res.result.error) throw bad(`${what}: ${res.result.error || 'bad BER'}`);
  if (res.offset !== data.byteLength) throw bad(`${what}: trailing data`);
  return res.result;
}

export function isTagged(n: asn1js.AsnType | undefined, tagNumber: number): boolean {
  return n !== undefined && n.idBlock.tagClass === 3 && n.idBlock.tagNumber === tagNumber;
}

/** The elements of a constructed value (SEQUENCE, SET, constructed tagged value). */
export function items(n: asn1js.AsnType | undefined, what: string): asn1js.AsnType[] {
  const v = (n?.valueBlock as { value?: unknown } | undefined)?.value;
  if (!n || !n.idBlock.isConstructed || !Array.isArray(v)) throw bad(`${what}: expected a constructed value`);
  return v as asn1js.AsnType[];
}

export function expectUniversal(n: asn1js.AsnType | undefined, tagNumber: number, what: string): asn1js.AsnType {
  if (!n || n.idBlock.tagClass !== 1 || n.idBlock.tagNumber !== tagNumber) throw bad(`${what}: unexpected element`);
  return n;
}

/** X.690 §8.7: the octets of an OCTET STRING (or IMPLICIT-tagged one), primitive or constructed. */
export function octets(n: asn1js.AsnType | undefined, what: string): Buffer {
  if (!n) throw bad(`${what}: missing`);
  if (n.idBlock.isConstructed) return Buffer.concat(items(n, what).map((c) => octets(c, what)));
  // A primitive element whose value block has no octets (asn1js decodes some tags, e.g. NULL
  // or an unknown constructed form, without them): not an OCTET STRING (found by fuzzing).
  const view = (n.valueBlock as unknown as { valueHexView?: Uint8Array }).valueHexView;
  if (!view) throw bad(`${what}: expected octets`);
  return Buffer.from(view);
}

export function oidOf(n: asn1js.AsnType | undefined, what: string): string {
  if (!(n instanceof asn1js.ObjectIdentifier)) throw bad(`${what}: expected an object identifier`);
  return n.valueBlock.toString();
}

/** RFC 5280 §4.1.1.2: AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }. */
export function algorithm(n: asn1js.AsnType | undefined, what: string): { oid: string; params?: asn1js.AsnType } {
  const [oid, params] = items(expectUniversal(n, 16, what), what);
  return { oid: oidOf(oid, what), params: params instanceof asn1js.Null ? undefined : params };
}

/** A small non-negative INTEGER. */
export function smallInt(n: asn1js.AsnType | undefined, what: string): number {
  if (!(n instanceof asn1js.Integer)) throw bad(`${what}: expected an integer`);
  const v = n.valueBlock.valueDec;
  if (!Number.isSafeInteger(v) || v < 0) throw bad(`${what}: integer out of range`);
  return v;
}

/** RFC 5652 §3: ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }. */
export function readContentInfo(der: Uint8Array): { type: string; content: asn1js.AsnType } {
  const [type, content] = items(expectUniversal(readBer(der, 'ContentInfo'), 16, 'ContentInfo'), 'ContentInfo');
  if (!isTagged(content, 0)) throw bad('ContentInfo: no content');
  const inner = items(content, 'ContentInfo content')[0];
  if (!inner) throw bad('ContentInfo: empty content');
  return { type: oidOf(type, 'ContentInfo type'), content: inner };
}

// Builders for the DER the tunnel sends (X.690 §10: definite lengths, DEFAULT values omitted).

/** RFC 5280 §4.1.1.2 AlgorithmIdentifier; `params` null: an explicit NULL (as RFC 4055 §2.1 defines sha256Identifier). */
export function algorithmDer(oid: string, params?: asn1js.AsnType | null): asn1js.Sequence {
  const p = params === null ? [new asn1js.Null()] : params ? [params] : [];
  return new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: oid }), ...p] });
}

/** A context-specific tag around values: [n] EXPLICIT (or IMPLICIT for a SET/SEQUENCE's elements). */
export function tagged(tagNumber: number, value: asn1js.AsnType[]): asn1js.Constructed {
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });
}

/** X.690 §8.7: a primitive OCTET STRING, or its IMPLICIT [n] form (asn1js keeps OctetString's own tag, so a Primitive). */
export function octetsDer(data: Uint8Array, implicitTag?: number): asn1js.AsnType {
  const valueHex = new Uint8Array(data);
  if (implicitTag === undefined) return new asn1js.OctetString({ valueHex });
  return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: implicitTag }, valueHex });
}

export function contentInfoDer(type: string, content: { toSchema(): asn1js.AsnType }): Buffer {
  return Buffer.from(new pkijs.ContentInfo({ contentType: type, content: content.toSchema() }).toSchema().toBER(false));
}

const certificates = new ParsedCache<pkijs.Certificate>();

/** A certificate from PEM, as pkijs reads it; parsed once per certificate (shared: do not modify it). */
export function pkijsCertificate(pem: string): pkijs.Certificate {
  return certificates.get(pem, (text) => pkijs.Certificate.fromBER(new Uint8Array(pemToDer(text))));
}
