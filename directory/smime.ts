import 'reflect-metadata';
import { createHash, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { Domain } from './domain.js';
import { parseAddress } from './domain.js';
import { MailmeshError } from './errors.js';
import type { SmimeKeyInfo } from './record.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const subtle = webcrypto.subtle;
const RSA_SIGN = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 3072,
};
/** RFC 5280 §4.2.1.12 id-kp-emailProtection */
const EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';
const ANY_EKU = '2.5.29.37.0';

export interface GeneratedSmime {
  leaf: x509.X509Certificate;
  ca: x509.X509Certificate;
  keyPkcs8Pem: string;
  caKeyPkcs8Pem: string;
}

function serial(): string {
  // RFC 5280 §4.1.2.2: positive, at most 20 octets.
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  b[0]! |= 0x01;
  return b.toString('hex');
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

const DAY = 86400_000;
/** Certificates start five minutes early, for clocks a little behind. */
const SKEW = 5 * 60_000;

/** A domain CA and its private key, as the secrets keep them. */
export interface DomainCa {
  ca: x509.X509Certificate;
  caKeyPkcs8Pem: string;
}

export interface LeafOptions extends DomainCa {
  now: Date;
  /** The leaf's validity (keys.leafDays); it never outlives the CA. */
  validDays: number;
  /** The leaf's key pair (PKCS#8) to certify again (renewal); absent: a new key pair. */
  keyPkcs8Pem?: string;
  /**
   * RFC 5280 §4.2.1.13: where the domain's CRLs are served (`…/v1/domains/{domain}/crl`); the
   * leaf's CRL distribution point names `<crlUrl>/<caKeyId>`, the CRL of the CA that issues it.
   */
  crlUrl?: string;
}

async function importSigningKey(pkcs8Pem: string): Promise<CryptoKey> {
  try {
    return await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pkcs8Pem), { name: RSA_SIGN.name, hash: RSA_SIGN.hash }, false, ['sign']);
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', `domain CA key: ${(e as Error).message}`, { cause: e });
  }
}

/** A self-signed domain CA (RFC 5280 §4.2.1.9 cA, §4.2.1.3 keyCertSign + cRLSign), valid twice `validDays`. */
export async function createDomainCa(domain: Domain, opts: { now: Date; validDays: number }): Promise<DomainCa> {
  const caKeys = (await subtle.generateKey(RSA_SIGN, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${domain} domain CA, O=mailmesh`,
    notBefore: new Date(opts.now.getTime() - SKEW),
    notAfter: new Date(opts.now.getTime() + 2 * opts.validDays * DAY),
    keys: caKeys,
    signingAlgorithm: RSA_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { ca, caKeyPkcs8Pem: await pkcs8Pem(caKeys.privateKey) };
}

/**
 * A leaf for `domainkey@<domain>` under the domain CA (docs/architecture.md "Domain keys"):
 * RSA-3072, SAN rfc822Name + dNSName, EKU emailProtection, KU digitalSignature + keyEncipherment
 * (RFC 8550 §4.4, RFC 5280 §4.2.1), never valid beyond its CA (RFC 5280 §6.1.3 checks each
 * certificate's validity). The same key pair when `keyPkcs8Pem` is given (renewal), else a new one.
 */
export async function issueLeaf(domain: Domain, opts: LeafOptions): Promise<{ leaf: x509.X509Certificate; keyPkcs8Pem: string }> {
  let publicKey: x509.PublicKeyType;
  let keyPkcs8Pem: string;
  if (opts.keyPkcs8Pem) {
    keyPkcs8Pem = opts.keyPkcs8Pem;
    try {
      publicKey = createPublicKey(keyPkcs8Pem).export({ type: 'spki', format: 'der' });
    } catch (e) {
      throw new MailmeshError('KEY_UNREADABLE', `leaf key: ${(e as Error).message}`, { cause: e });
    }
  } else {
    const keys = (await subtle.generateKey(RSA_SIGN, true, ['sign', 'verify'])) as CryptoKeyPair;
    publicKey = keys.publicKey;
    keyPkcs8Pem = await pkcs8Pem(keys.privateKey);
  }
  const notAfter = Math.min(opts.now.getTime() + opts.validDays * DAY, opts.ca.notAfter.getTime());
  if (notAfter <= opts.now.getTime()) throw new MailmeshError('KEY_EXPIRED', `the domain CA ${opts.ca.subject} expired ${opts.ca.notAfter.toISOString()}`);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${domain} domain key, E=domainkey@${domain}`,
    issuer: opts.ca.subjectName,
    notBefore: new Date(Math.max(opts.now.getTime() - SKEW, opts.ca.notBefore.getTime())),
    notAfter: new Date(notAfter),
    publicKey,
    signingKey: await importSigningKey(opts.caKeyPkcs8Pem),
    signingAlgorithm: RSA_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([EMAIL_PROTECTION]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'email', value: `domainkey@${domain}` },
        { type: 'dns', value: domain },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(opts.ca),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ...(opts.crlUrl ? [new x509.CRLDistributionPointsExtension([`${opts.crlUrl}/${await caKeyId(opts.ca)}`])] : []),
    ],
  });
  return { leaf, keyPkcs8Pem };
}

/** A new domain CA (twice `validDays`) and a leaf under it (`leafDays`, default and at most `validDays`). */
export async function generateSmime(domain: Domain, opts: { now: Date; validDays: number; leafDays?: number; crlUrl?: string }): Promise<GeneratedSmime> {
  const ca = await createDomainCa(domain, opts);
  const { leaf, keyPkcs8Pem } = await issueLeaf(domain, { ...ca, now: opts.now, validDays: Math.min(opts.leafDays ?? opts.validDays, opts.validDays), crlUrl: opts.crlUrl });
  return { leaf, ca: ca.ca, keyPkcs8Pem, caKeyPkcs8Pem: ca.caKeyPkcs8Pem };
}

/** RFC 5280 §5.2.3 id-ce-cRLNumber */
const CRL_NUMBER = '2.5.29.20';

/** A CRL entry (RFC 5280 §5.1.2.6) with its reasonCode (§5.3.1). */
export interface CrlEntry {
  serialNumber: string;
  revocationDate: Date;
  reason: x509.X509CrlReason;
}

/** DER of a non-negative INTEGER (X.690 §8.3): big-endian, a leading zero octet when the high bit is set. */
function derInteger(n: number): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let body = Buffer.from(hex, 'hex');
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

function readDerInteger(der: ArrayBuffer): number | undefined {
  const b = Buffer.from(der);
  if (b.length < 3 || b[0] !== 0x02 || b[1] !== b.length - 2 || b.length > 8) return undefined;
  return Number.parseInt(b.subarray(2).toString('hex'), 16);
}

/**
 * A v2 CRL (RFC 5280 §5) signed by the domain CA: issuer = the CA's subject (§5.1.2.3), one
 * entry per revoked leaf with its reasonCode (§5.3.1), the CRL number (§5.2.3) and the
 * authority key identifier (§5.2.1). nextUpdate (§5.1.2.5) is the CA's notAfter: the directory
 * issues a new CRL with every revocation, and none is needed once the CA has expired.
 */
export async function issueCrl(opts: DomainCa & { now: Date; entries: CrlEntry[]; number: number }): Promise<Buffer> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: opts.ca.subjectName,
    thisUpdate: new Date(opts.now.getTime() - SKEW),
    nextUpdate: opts.ca.notAfter,
    signingAlgorithm: RSA_SIGN,
    signingKey: await importSigningKey(opts.caKeyPkcs8Pem),
    extensions: [new x509.Extension(CRL_NUMBER, false, new Uint8Array(derInteger(opts.number))), await x509.AuthorityKeyIdentifierExtension.create(opts.ca)],
    entries: opts.entries.map((e) => ({ serialNumber: e.serialNumber, revocationDate: e.revocationDate, reason: e.reason })),
  });
  return Buffer.from(crl.rawData);
}

/**
 * The key identifier of a domain CA, lower-case hex: the SHA-1 of its public key (RFC 5280
 * §4.2.1.2 method 1), as the authority key identifier (§5.2.1) of the CRLs it issues carries it.
 */
export async function caKeyId(ca: x509.X509Certificate): Promise<string> {
  return Buffer.from(await ca.publicKey.getKeyIdentifier()).toString('hex');
}

/**
 * The key identifier of a CRL's issuer (its authority key identifier, RFC 5280 §5.2.1, lower-case
 * hex) and its nextUpdate (§5.1.2.5); undefined for an unreadable CRL or one without them.
 */
export function crlIssuerKey(der: Uint8Array): { keyId: string; nextUpdate?: Date } | undefined {
  try {
    const crl = new x509.X509Crl(Buffer.from(der));
    const aki = crl.getExtension(x509.AuthorityKeyIdentifierExtension);
    return aki?.keyId ? { keyId: aki.keyId.toLowerCase(), nextUpdate: crl.nextUpdate } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The entries and number of a CRL if `ca` issued it (same issuer name, signature verifies);
 * undefined for another CA's CRL or an unreadable one.
 */
export async function readCrl(der: Uint8Array, ca: x509.X509Certificate): Promise<{ entries: CrlEntry[]; number: number } | undefined> {
  try {
    const crl = new x509.X509Crl(Buffer.from(der));
    if (crl.issuer !== ca.subject || !(await crl.verify({ publicKey: ca.publicKey }))) return undefined;
    const ext = crl.getExtension(CRL_NUMBER);
    return {
      entries: crl.entries.map((e) => ({ serialNumber: e.serialNumber, revocationDate: e.revocationDate, reason: e.reason ?? x509.X509CrlReason.unspecified })),
      number: (ext && readDerInteger(ext.value)) ?? 0,
    };
  } catch {
    return undefined;
  }
}

/**
 * @peculiar/x509 decodes the public key and the extensions on first use: decode them here, so
 * a malformed one (RFC 5280 §4.1.2.7, §4.2) is KEY_UNREADABLE at reading and not a plain Error
 * later, in validation (found by fuzzing).
 */
function decoded(cert: x509.X509Certificate): x509.X509Certificate {
  void cert.publicKey.algorithm;
  void cert.extensions;
  return cert;
}

/** Reads PEM (RFC 7468, one or more CERTIFICATE blocks) or a single DER certificate. */
export function readCertificates(data: string | Uint8Array): x509.X509Certificate[] {
  try {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString('latin1');
    if (text.includes('-----BEGIN CERTIFICATE-----')) {
      const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      return blocks.map((b) => decoded(new x509.X509Certificate(b)));
    }
    if (typeof data === 'string') throw new Error('no PEM CERTIFICATE block');
    return [decoded(new x509.X509Certificate(Buffer.from(data)))];
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', e instanceof Error ? e.message : String(e), { cause: e });
  }
}

/** Puts certificates in issuing order: the end-entity first, then each issuer that is present. */
export function orderChain(certs: x509.X509Certificate[]): x509.X509Certificate[] {
  if (certs.length === 0) throw new MailmeshError('KEY_UNREADABLE', 'no certificate');
  const issuers = new Set(certs.filter((c) => c.subject !== c.issuer).map((c) => c.issuer));
  const leaf = certs.find((c) => !issuers.has(c.subject) || certs.length === 1) ?? certs[0]!;
  const chain = [leaf];
  for (let cur = leaf; cur.subject !== cur.issuer; ) {
    const next = certs.find((c) => c !== cur && c.subject === cur.issuer && !chain.includes(c));
    if (!next) break;
    chain.push(next);
    cur = next;
  }
  return chain;
}

function certAddresses(cert: x509.X509Certificate): { emails: string[]; dns: string[] } {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  const emails = names.filter((n) => n.type === 'email').map((n) => n.value);
  const dns = names.filter((n) => n.type === 'dns').map((n) => n.value.toLowerCase());
  emails.push(...cert.subjectName.getField('E'), ...cert.subjectName.getField('1.2.840.113549.1.9.1'));
  return { emails, dns };
}

function rsaBits(cert: x509.X509Certificate): number | undefined {
  const alg = cert.publicKey.algorithm as { name: string; modulusLength?: number };
  return alg.name.startsWith('RSA') ? alg.modulusLength : undefined;
}

/**
 * Refuses a certificate chain a domain must not publish: a leaf that names no address or
 * DNS name of the domain, out of its validity period, RSA under 2048 bits, not allowed to
 * encrypt (key usage) or protect mail (EKU), or a chain whose signatures do not verify.
 * Trust-anchor validation is the importer's business (federation/).
 */
export async function validateSmimeChain(chain: x509.X509Certificate[], domain: Domain, now: Date): Promise<void> {
  const leaf = chain[0]!;
  const { emails, dns } = certAddresses(leaf);
  const belongs =
    dns.includes(domain) ||
    emails.some((e) => {
      try {
        return parseAddress(e).domain === domain;
      } catch {
        return false;
      }
    });
  if (!belongs) throw new MailmeshError('KEY_WRONG_DOMAIN', `certificate names ${JSON.stringify([...emails, ...dns])}`);
  for (const c of chain) {
    if (c.notAfter.getTime() <= now.getTime()) throw new MailmeshError('KEY_EXPIRED', `${c.subject} expired ${c.notAfter.toISOString()}`);
    if (c.notBefore.getTime() > now.getTime()) throw new MailmeshError('KEY_NOT_YET_VALID', `${c.subject} from ${c.notBefore.toISOString()}`);
    const bits = rsaBits(c);
    if (bits !== undefined && bits < 2048) throw new MailmeshError('KEY_TOO_WEAK', `RSA ${bits} bits in ${c.subject}`);
  }
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  const isRsa = rsaBits(leaf) !== undefined;
  const needed = isRsa ? x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.keyAgreement;
  if (ku && (ku.usages & needed) === 0) throw new MailmeshError('KEY_NO_ENCRYPTION', 'key usage allows no key encipherment');
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.some((u) => u === EMAIL_PROTECTION || u === ANY_EKU)) {
    throw new MailmeshError('KEY_USAGE', 'extended key usage lacks emailProtection');
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const ok = await chain[i]!.verify({ publicKey: chain[i + 1]!.publicKey, signatureOnly: true, date: now });
    if (!ok) throw new MailmeshError('CHAIN_INVALID', `${chain[i]!.subject} is not signed by ${chain[i + 1]!.subject}`);
  }
}

/** SHA-256 of the certificate DER, lower-case hex (the `smime=` pin of the TXT record). */
export function certificateFingerprint(cert: x509.X509Certificate): string {
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex');
}

export function smimeKeyInfo(chain: x509.X509Certificate[]): SmimeKeyInfo {
  const leaf = chain[0]!;
  return {
    fingerprint: certificateFingerprint(leaf),
    subject: leaf.subject,
    issuer: leaf.issuer,
    serialNumber: leaf.serialNumber,
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    chain: chain.map((c) => c.toString('pem')),
  };
}

/** The DER of a PEM certificate (for SMIMEA records, LDAP userCertificate;binary, DER downloads). */
export function pemToDer(pem: string): Buffer {
  return Buffer.from(new x509.X509Certificate(pem).rawData);
}
