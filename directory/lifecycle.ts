import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Domain } from './domain.js';
import { MailmeshError } from './errors.js';
import { leafDays, type KeyOptions } from './keys.js';
import { generateOpenPgpKey, openPgpKeyInfo, revocationCertificate, type RevocationReason } from './openpgp.js';
import type { DomainRecord, KeySecrets, RetainedKeys } from './record.js';
import { generateSmime, issueCrl, issueLeaf, readCertificates, readCrl, smimeKeyInfo, type CrlEntry, type DomainCa } from './smime.js';

/**
 * The key lifecycle of a local domain (docs/lifecycle.md): the key material of a roll, a
 * renewal and a revocation. Directory (directory.ts) reads, signs and writes; this file
 * makes keys, certificates, revocations and the retention list.
 */

export const DEFAULT_OVERLAP_DAYS = 7;
export const DEFAULT_RETAIN_DAYS = 30;
const DAY = 86400_000;
/** Revocation certificates a record keeps carrying (the newest first); older ones fall off. */
const MAX_REVOCATIONS = 16;

/** Public keys and the private keys that go with them. */
export interface KeySet {
  keys: DomainRecord['keys'];
  secrets: KeySecrets;
}

export function daysAfter(now: Date, days: number): string {
  return new Date(now.getTime() + days * DAY).toISOString();
}

/** What a record states as its validity: from now until the first of its keys expires. */
export function recordValidity(keys: DomainRecord['keys'], now: Date): DomainRecord['validity'] {
  return { notBefore: now.toISOString(), notAfter: keys.smime?.notAfter ?? keys.openpgp?.expires ?? null };
}

/** The domain CA of a key set: the self-signed end of its chain, with its private key; undefined when it has none (an imported certificate). */
export function domainCa(set: KeySet): DomainCa | undefined {
  const chain = set.keys.smime?.chain;
  const caKeyPkcs8Pem = set.secrets.smime?.caKeyPkcs8Pem;
  if (!chain?.length || !caKeyPkcs8Pem) return undefined;
  const ca = readCertificates(chain[chain.length - 1]!)[0]!;
  return ca.subject === ca.issuer ? { ca, caKeyPkcs8Pem } : undefined;
}

function smimeSet(leaf: x509.X509Certificate, ca: DomainCa, keyPkcs8Pem: string): Pick<KeySet['keys'], 'smime'> & { secrets: KeySecrets['smime'] } {
  return { smime: smimeKeyInfo([leaf, ca.ca]), secrets: { keyPkcs8Pem, caKeyPkcs8Pem: ca.caKeyPkcs8Pem } };
}

/**
 * New keys to replace `current` (a roll or a revocation): a new OpenPGP key, and a new S/MIME
 * leaf with a new key pair under the same domain CA, or under a new CA when `newCa` is set
 * (a compromise), the current one has no CA key here, or the CA would expire within
 * keys.validDays (the CA roll: the new chain goes out as `next` like any roll).
 */
export async function newKeys(domain: Domain, current: KeySet, opts: { keys: KeyOptions; now: Date; crlUrl?: string; newCa?: boolean }): Promise<KeySet> {
  const { now } = opts;
  const validDays = opts.keys.validDays;
  const leaf = { now, validDays: leafDays(opts.keys), crlUrl: opts.crlUrl };
  const ca = opts.newCa ? undefined : domainCa(current);
  const keepCa = ca && ca.ca.notAfter.getTime() - now.getTime() >= validDays * DAY;
  const [pgp, smime] = await Promise.all([
    generateOpenPgpKey(domain, { algorithm: opts.keys.openpgp, now, validDays }),
    keepCa
      ? issueLeaf(domain, { ...ca, ...leaf }).then((l) => smimeSet(l.leaf, ca, l.keyPkcs8Pem))
      : generateSmime(domain, { now, validDays, leafDays: leaf.validDays, crlUrl: opts.crlUrl }).then((g) => smimeSet(g.leaf, { ca: g.ca, caKeyPkcs8Pem: g.caKeyPkcs8Pem }, g.keyPkcs8Pem)),
  ]);
  return {
    keys: { openpgp: await openPgpKeyInfo(pgp.publicKey), smime: smime.smime },
    secrets: { openpgp: { armored: pgp.privateArmored }, smime: smime.secrets },
  };
}

/**
 * The S/MIME leaf of `current` certified again by its domain CA, with the same key pair
 * (renewal), for keys.leafDays like a new leaf. The CA stays: a leaf never outlives it, so near the CA's end the new leaf is
 * shorter, and the next roll (newKeys) brings a new CA. TUNNEL_NO_KEY without a CA key here.
 */
export async function renewedLeaf(domain: Domain, current: KeySet, opts: { keys: KeyOptions; now: Date; crlUrl?: string }): Promise<KeySet['keys']['smime'] & object> {
  const ca = domainCa(current);
  const keyPkcs8Pem = current.secrets.smime?.keyPkcs8Pem;
  if (!ca || !keyPkcs8Pem) throw new MailmeshError('TUNNEL_NO_KEY', `${domain} has no domain CA key here to renew its S/MIME certificate`);
  const { leaf } = await issueLeaf(domain, { ...ca, keyPkcs8Pem, now: opts.now, validDays: leafDays(opts.keys), crlUrl: opts.crlUrl });
  return smimeKeyInfo([leaf, ca.ca]);
}

/** Keys that stop being current at `now`, kept for keys.retainDays. */
export function retire(set: KeySet, now: Date, retainDays: number, revoked = false): RetainedKeys {
  return { keys: set.keys, secrets: set.secrets, retired: now.toISOString(), until: daysAfter(now, retainDays), ...(revoked ? { revoked: true } : {}) };
}

/** Retained keys split into those still kept at `now` and those past `until`. */
export function expired(retained: RetainedKeys[] | undefined, now: Date): { kept: RetainedKeys[]; erased: number } {
  const kept = (retained ?? []).filter((r) => Date.parse(r.until) > now.getTime());
  return { kept, erased: (retained?.length ?? 0) - kept.length };
}

/** RFC 5280 §5.3.1 reasonCode for a revocation reason. */
function crlReason(reason: RevocationReason): x509.X509CrlReason {
  return reason === 'compromised' ? x509.X509CrlReason.keyCompromise : x509.X509CrlReason.superseded;
}

/**
 * What a revocation publishes about the key sets it ends (`ended`: the current keys, and the
 * announced next ones if any): an OpenPGP revocation certificate of each key (RFC 4880 §5.2.1
 * 0x20), and the domain CA's CRL (RFC 5280 §5) with every leaf of those sets that this CA
 * issued, added to the entries of `previousCrl` when the same CA issued it (else a first CRL).
 * `also` are more leaves of the same key pair (earlier renewals still retained). The CRL is
 * the one of the CA of the first set; with no CA key here, `previousCrl` stays.
 */
export async function revocations(
  ended: KeySet[],
  also: KeySet[],
  previousCrl: string | undefined,
  reason: RevocationReason,
  now: Date,
): Promise<{ certificates: string[]; crl: string | undefined }> {
  const certificates = await Promise.all(
    ended.filter((s) => s.secrets.openpgp).map((s) => revocationCertificate(s.secrets.openpgp!.armored, reason, now)),
  );
  const ca = ended[0] && domainCa(ended[0]);
  if (!ca) return { certificates, crl: previousCrl };
  const previous = previousCrl ? await readCrl(Buffer.from(previousCrl, 'base64'), ca.ca) : undefined;
  const serials = [...ended, ...also].map((s) => s.keys.smime).filter((s) => s && s.issuer === ca.ca.subject).map((s) => s!.serialNumber);
  const entries: CrlEntry[] = (previous?.entries ?? []).filter((e) => !serials.includes(e.serialNumber));
  for (const serialNumber of new Set(serials)) entries.push({ serialNumber, revocationDate: now, reason: crlReason(reason) });
  const der = await issueCrl({ ...ca, now, entries, number: (previous?.number ?? 0) + 1 });
  return { certificates, crl: der.toString('base64') };
}

/** The revocation certificates a record carries on: the new ones first, then those it carried, at most MAX_REVOCATIONS. */
export function carriedRevocations(added: string[], signedPayload: string | undefined): string[] {
  let before: string[] = [];
  if (signedPayload) {
    const p = JSON.parse(signedPayload) as { revocations?: unknown };
    if (Array.isArray(p.revocations)) before = p.revocations.filter((r): r is string => typeof r === 'string');
  }
  return [...added, ...before.filter((r) => !added.includes(r))].slice(0, MAX_REVOCATIONS);
}
