import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { requireBearer } from '../directory/bearer.js';
import type { Directory } from '../directory/directory.js';
import { parseDomain, type Domain } from '../directory/domain.js';
import { MailmeshError } from '../directory/errors.js';
import { importOpenPgp } from '../directory/keys.js';
import type { DomainRecord, OpenPgpKeyInfo, SmimeKeyInfo } from '../directory/record.js';
import { smimeKeyInfo, validateSmimeChain } from '../directory/smime.js';
import { anchoredPath, validatePath } from './chain.js';

/**
 * Third-party keys (docs/architecture.md "Words"): a partner's domain key imported by an operator, from
 * an OpenPGP key, PEM or DER certificates or a PKCS#7 (RFC 5652 §5) certificate bag. Certificates
 * must form one path from the domain's certificate to a configured trust anchor (federation/chain.ts); domain binding, expiry, strength and usage are
 * directory/keys.ts's checks. Stored with provenance `imported`, published only when asked.
 */

export interface ImportOptions {
  /** PEM certificates of trusted CAs (federation.trustAnchors). */
  trustAnchors: string[];
  publish: boolean;
  /** Where it came from: a file name, an LDAP URL, an HTTP client. */
  origin: string;
}

type Material = { kind: 'openpgp'; data: string | Buffer } | { kind: 'certificates'; der: Buffer[] };

function isOpenPgp(data: Buffer): boolean {
  const head = data.subarray(0, 64).toString('latin1');
  // RFC 4880 §6.2 armor, or §4.2 a binary packet header for a public/secret key packet (tags 6, 5).
  if (head.includes('-----BEGIN PGP')) return true;
  const b = data[0] ?? 0;
  if (!(b & 0x80)) return false;
  const tag = b & 0x40 ? b & 0x3f : (b >> 2) & 0x0f;
  return tag === 6 || tag === 5;
}

/** RFC 5652 §5.1: certificates of a SignedData (a "certs-only" PKCS#7), DER. */
function pkcs7Certificates(der: Buffer): Buffer[] | undefined {
  try {
    const asn = asn1js.fromBER(new Uint8Array(der));
    if (asn.offset === -1) return undefined;
    const info = new pkijs.ContentInfo({ schema: asn.result });
    if (info.contentType !== pkijs.ContentInfo.SIGNED_DATA) return undefined;
    const sd = new pkijs.SignedData({ schema: info.content });
    return (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate).map((c) => Buffer.from(c.toSchema().toBER(false)));
  } catch {
    return undefined;
  }
}

/** Tells what a file holds: OpenPGP key, PEM certificates, PEM/DER PKCS#7, or one DER certificate. */
export function readMaterial(data: Buffer): Material {
  if (isOpenPgp(data)) return { kind: 'openpgp', data: data.subarray(0, 64).toString('latin1').includes('-----BEGIN PGP') ? data.toString('utf8') : data };
  const text = data.toString('latin1');
  // RFC 7468 §5 CERTIFICATE, §8 PKCS7 (and the CMS label).
  const pem = [...text.matchAll(/-----BEGIN (CERTIFICATE|PKCS7|CMS)-----([\s\S]+?)-----END \1-----/g)];
  if (pem.length) {
    const der: Buffer[] = [];
    for (const [, label, body] of pem) {
      const bytes = Buffer.from(body!.replace(/\s+/g, ''), 'base64');
      if (label === 'CERTIFICATE') der.push(bytes);
      else der.push(...(pkcs7Certificates(bytes) ?? []));
    }
    if (der.length) return { kind: 'certificates', der };
    throw new MailmeshError('KEY_UNREADABLE', 'no certificate in the PEM blocks');
  }
  const bag = pkcs7Certificates(data);
  if (bag?.length) return { kind: 'certificates', der: bag };
  return { kind: 'certificates', der: [data] };
}

/** Reads anchor files (PEM, possibly several certificates each). */
export function loadAnchors(files: string[]): string[] {
  return files.flatMap((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new MailmeshError('CONFIG_INVALID', `trust anchor ${f}: ${(e as Error).message}`);
    }
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    if (!blocks) throw new MailmeshError('CONFIG_INVALID', `trust anchor ${f}: no PEM certificate`);
    return blocks;
  });
}

/** Validates and stores a third-party key for a domain, merged with what was imported before. */
export async function importThirdParty(directory: Directory, domainInput: string, data: Buffer, o: ImportOptions): Promise<DomainRecord> {
  const domain: Domain = parseDomain(domainInput);
  const now = directory.clock();
  const existing = await directory.store.getRecord(domain);
  const live = existing && existing.status !== 'deleted' ? existing : undefined;
  if (live && live.provenance.source !== 'imported') throw new MailmeshError('DOMAIN_HELD', `${domain} is a ${live.provenance.source} domain of this directory`);
  const material = readMaterial(data);
  let openpgp: OpenPgpKeyInfo | undefined;
  let smime: SmimeKeyInfo | undefined;
  let how: string;
  if (material.kind === 'openpgp') {
    openpgp = await importOpenPgp(material.data, domain, now);
    how = `OpenPGP key ${openpgp.fingerprint} valid for ${domain}`;
  } else {
    // Exactly the path from the domain's certificate to the anchor is checked and published (federation/chain.ts).
    const anchored = await anchoredPath(material.der, o.trustAnchors, domain);
    await validateSmimeChain(anchored.path, domain, now);
    await validatePath(anchored, now);
    smime = smimeKeyInfo(anchored.path);
    const anchorName = anchored.anchor.subjectName.getField('CN')[0] ?? anchored.anchor.subject;
    how = `certificate ${smime.fingerprint} for ${domain}, chain to trust anchor ${anchorName}`;
  }
  const keys = { ...live?.keys, ...(openpgp ? { openpgp } : {}), ...(smime ? { smime } : {}) };
  const at = now.toISOString();
  return directory.putRecord(
    {
      domain,
      keys,
      gateways: live?.gateways ?? { smtp: [] },
      formats: [...(keys.openpgp ? ['pgp-mime' as const] : []), ...(keys.smime ? ['smime' as const] : [])],
      validity: { notBefore: at, notAfter: keys.smime?.notAfter ?? keys.openpgp?.expires ?? null },
      updated: at,
      status: 'active',
      provenance: { source: 'imported', verified: how, origin: o.origin, at },
      publish: o.publish,
    },
    existing ? existing.serial : null,
  );
}

/** POST /v1/imports: `{domain, data, encoding?, publish?}` with `Authorization: Bearer <federation.importToken>`. */
export function importHandler(directory: Directory, o: { token?: string; trustAnchors: string[]; publish: boolean }) {
  return async (body: unknown, authorization: string | undefined): Promise<DomainRecord> => {
    requireBearer(authorization, o.token, 'set federation.importToken to allow imports over HTTP');
    const b = body as { domain?: unknown; data?: unknown; encoding?: unknown; publish?: unknown } | null;
    if (!b || typeof b.domain !== 'string' || typeof b.data !== 'string' || (b.encoding !== undefined && b.encoding !== 'text' && b.encoding !== 'base64')) {
      throw new MailmeshError('BAD_REQUEST', 'expected {domain, data, encoding?: text|base64, publish?: boolean}');
    }
    const data = b.encoding === 'base64' ? Buffer.from(b.data, 'base64') : Buffer.from(b.data, 'utf8');
    return importThirdParty(directory, b.domain, data, { trustAnchors: o.trustAnchors, publish: typeof b.publish === 'boolean' ? b.publish : o.publish, origin: 'POST /v1/imports' });
  };
}
