import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as pkijs from 'pkijs';
import type { Domain } from '../directory/domain.js';
import { MailmeshError } from '../directory/errors.js';

/**
 * Certification path building for imported certificates (RFC 4158 in short, RFC 5280 §6 to
 * validate): from the domain's own certificate up to a configured trust anchor. The path is
 * built by issuer name and signature, validated as it is, and it is what gets published; a file
 * that holds any certificate off the path is refused, so what was checked is what is served.
 */

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });
/** Longest path tried (leaf, intermediates, anchor): deeper PKIs are not what a mail domain has. */
const MAX_DEPTH = 8;
/** Most certificates in one file, and most signature checks one search makes. */
const MAX_CERTIFICATES = 32;
const MAX_SIGNATURE_CHECKS = 256;

export interface AnchoredPath {
  /** Leaf first, each issuer next, the trust anchor (as configured) last. */
  path: x509.X509Certificate[];
  anchor: x509.X509Certificate;
}

function parse(der: Uint8Array | ArrayBuffer, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(new Uint8Array(der));
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', `${what}: ${(e as Error).message}`);
  }
}

const same = (a: x509.X509Certificate, b: x509.X509Certificate) => Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
/** The same CA under another issuer (a cross-certificate): same subject, same key. */
const sameEntity = (a: x509.X509Certificate, b: x509.X509Certificate) => a.subject === b.subject && Buffer.from(a.publicKey.rawData).equals(Buffer.from(b.publicKey.rawData));

/** RFC 5280 §4.2.1.6: the certificate names the domain key, domainkey@D (rfc822Name), or D (dNSName). */
export function namesDomain(cert: x509.X509Certificate, domain: Domain): boolean {
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON() ?? [];
  return names.some((n) => (n.type === 'email' && n.value.toLowerCase() === `domainkey@${domain}`) || (n.type === 'dns' && n.value.toLowerCase().replace(/\.$/, '') === domain));
}

/** RFC 5280 §4.2.1.9: only a CA certificate may issue. */
function isCa(cert: x509.X509Certificate): boolean {
  return cert.getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

/**
 * Depth first from `path`'s last certificate; anchors are tried before the file's certificates
 * at each step. Signature checks are remembered per pair and limited in number (`budget`): a
 * file of many CAs with the same name cannot make the search run for long.
 */
class PathSearch {
  readonly #checked = new Map<string, boolean>();
  #budget = MAX_SIGNATURE_CHECKS;

  constructor(
    readonly pool: x509.X509Certificate[],
    readonly anchors: x509.X509Certificate[],
  ) {}

  async #signedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
    if (cert.issuer !== issuer.subject) return false;
    const key = `${Buffer.from(cert.rawData).toString('base64')}|${Buffer.from(issuer.publicKey.rawData).toString('base64')}`;
    const known = this.#checked.get(key);
    if (known !== undefined) return known;
    if (--this.#budget < 0) throw new MailmeshError('TRUST_ANCHOR_UNKNOWN', `path search gave up after ${MAX_SIGNATURE_CHECKS} signature checks`);
    const ok = await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }).catch(() => false);
    this.#checked.set(key, ok);
    return ok;
  }

  async extend(path: x509.X509Certificate[]): Promise<AnchoredPath | undefined> {
    const top = path[path.length - 1]!;
    const anchorItself = path.length > 1 ? this.anchors.find((a) => same(a, top) || sameEntity(a, top)) : undefined;
    if (anchorItself) return { path: [...path.slice(0, -1), anchorItself], anchor: anchorItself };
    for (const a of this.anchors) if (await this.#signedBy(top, a)) return { path: [...path, a], anchor: a };
    if (path.length >= MAX_DEPTH - 1) return undefined;
    for (const c of this.pool) {
      if (path.some((p) => same(p, c) || sameEntity(p, c)) || !isCa(c) || !(await this.#signedBy(top, c))) continue;
      const found = await this.extend([...path, c]);
      if (found) return found;
    }
    return undefined;
  }
}

/**
 * The path from the certificate of `domain` in `der` to one of `anchorsPem`, by names and
 * signatures only (validatePath checks it at a date). KEY_WRONG_DOMAIN: no certificate names
 * the domain; TRUST_ANCHOR_UNKNOWN: none leads to an anchor (or the search gave up); CHAIN_UNRELATED: the file holds certificates off that path (a
 * cross-certificate of a certificate on the path, same subject and key, is not off it).
 */
export async function anchoredPath(der: Uint8Array[], anchorsPem: string[], domain: Domain): Promise<AnchoredPath> {
  if (anchorsPem.length === 0) throw new MailmeshError('TRUST_ANCHOR_UNKNOWN', 'no trust anchors are configured (federation.trustAnchors)');
  const anchors = anchorsPem.map((p, i) => {
    try {
      return new x509.X509Certificate(p);
    } catch (e) {
      throw new MailmeshError('CONFIG_INVALID', `trust anchor ${i + 1} (federation.trustAnchors): ${(e as Error).message}`);
    }
  });
  if (der.length > MAX_CERTIFICATES) throw new MailmeshError('KEY_UNREADABLE', `${der.length} certificates in one file; at most ${MAX_CERTIFICATES}`);
  const pool = der.map((d, i) => parse(d, `certificate ${i + 1}`));
  const search = new PathSearch(pool, anchors);
  const leaves = pool.filter((c) => !isCa(c) && namesDomain(c, domain));
  if (leaves.length === 0) throw new MailmeshError('KEY_WRONG_DOMAIN', `no certificate in the file names domainkey@${domain} or ${domain} (subjects ${JSON.stringify(pool.map((c) => c.subject))})`);
  let found: AnchoredPath | undefined;
  for (const leaf of leaves) if ((found = await search.extend([leaf]))) break;
  if (!found) throw new MailmeshError('TRUST_ANCHOR_UNKNOWN', `no path from ${leaves.map((l) => l.subject).join(' or ')} to a configured anchor`);
  const off = pool.filter((c) => !found.path.some((p) => same(p, c) || sameEntity(p, c)));
  if (off.length) throw new MailmeshError('CHAIN_UNRELATED', `not on the path from ${found.path[0]!.subject} to ${found.anchor.subject}: ${off.map((c) => c.subject).join('; ')}`);
  return found;
}

/**
 * RFC 5280 §6.1 on exactly the path `anchoredPath` built (pkijs takes the last certificate of
 * `certs` as the end entity); TRUST_ANCHOR_UNKNOWN when it does not validate at `now`.
 */
export async function validatePath({ path, anchor }: AnchoredPath, now: Date): Promise<void> {
  const toPkijs = (c: x509.X509Certificate) => {
    try {
      return pkijs.Certificate.fromBER(new Uint8Array(c.rawData));
    } catch (e) {
      throw new MailmeshError('KEY_UNREADABLE', `${c.subject}: ${(e as Error).message}`);
    }
  };
  const below = path.slice(0, -1);
  const certs = [...below.slice(1).reverse(), below[0]!].map(toPkijs);
  const v = new pkijs.CertificateChainValidationEngine({ trustedCerts: [toPkijs(anchor)], certs, checkDate: now });
  const r = await v.verify({}, engine).catch((e: unknown) => ({ result: false as const, resultMessage: (e as { resultMessage?: string }).resultMessage ?? String(e), certificatePath: undefined }));
  if (!r.result) throw new MailmeshError('TRUST_ANCHOR_UNKNOWN', r.resultMessage);
  const checked = (r.certificatePath ?? []).map((c) => Buffer.from(c.toSchema().toBER(false)));
  if (checked.length !== path.length || !checked.every((d) => path.some((p) => d.equals(Buffer.from(p.rawData))))) {
    throw new MailmeshError('TRUST_ANCHOR_UNKNOWN', 'the validated path is not the one built');
  }
}
