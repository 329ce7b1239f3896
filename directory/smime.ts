import 'reflect-metadata';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
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

/**
 * A self-signed domain CA and a leaf for `domainkey@<domain>` (docs/architecture.md "Domain keys"):
 * RSA-3072, SAN rfc822Name + dNSName, EKU emailProtection, KU digitalSignature + keyEncipherment
 * (RFC 8550 §4.4, RFC 5280 §4.2.1).
 */
export async function generateSmime(domain: Domain, opts: { now: Date; validDays: number }): Promise<GeneratedSmime> {
  const notBefore = new Date(opts.now.getTime() - 5 * 60_000);
  const caKeys = (await subtle.generateKey(RSA_SIGN, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leafKeys = (await subtle.generateKey(RSA_SIGN, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${domain} domain CA, O=mailmesh`,
    notBefore,
    notAfter: new Date(opts.now.getTime() + 2 * opts.validDays * 86400_000),
    keys: caKeys,
    signingAlgorithm: RSA_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${domain} domain key, E=domainkey@${domain}`,
    issuer: ca.subject,
    notBefore,
    notAfter: new Date(opts.now.getTime() + opts.validDays * 86400_000),
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: RSA_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([EMAIL_PROTECTION]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'email', value: `domainkey@${domain}` },
        { type: 'dns', value: domain },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
    ],
  });
  return { leaf, ca, keyPkcs8Pem: await pkcs8Pem(leafKeys.privateKey), caKeyPkcs8Pem: await pkcs8Pem(caKeys.privateKey) };
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
