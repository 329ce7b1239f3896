import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Domain } from './domain.js';
import { MailmeshError } from './errors.js';
import { leafDays, type KeyOptions } from './keys.js';
import { generateOpenPgpKey, openPgpKeyInfo, revocationCertificate, type RevocationReason } from './openpgp.js';
import type { DomainRecord, KeySecrets, RetainedKeys } from './record.js';
import { MAX_CRLS } from './signed.js';
import { caKeyId, crlIssuerKey, generateSmime, issueCrl, issueLeaf, readCertificates, readCrl, smimeKeyInfo, type CrlEntry, type DomainCa } from './smime.js';

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
 * 0x20), and for each domain CA that issued one of their leaves (or of `also`: more leaves of
 * the same key pair, earlier renewals still retained) that CA's CRL (RFC 5280 §5) listing them,
 * added to the entries of its CRL in `previousCrls` if any. `fresh` is the CA of the new keys:
 * when no revoked leaf is its (a new CA), it gets a first, empty CRL, so the distribution point
 * of its leaves resolves. Leaves whose CA key is not here are left out.
 */
export async function revocations(
  ended: KeySet[],
  also: KeySet[],
  previousCrls: string[],
  reason: RevocationReason,
  now: Date,
  fresh?: DomainCa,
): Promise<{ certificates: string[]; crls: string[] }> {
  const certificates = await Promise.all(
    ended.filter((s) => s.secrets.openpgp).map((s) => revocationCertificate(s.secrets.openpgp!.armored, reason, now)),
  );
  const byCa = new Map<string, { ca: DomainCa; serials: Set<string> }>();
  for (const set of [...ended, ...also]) {
    const ca = domainCa(set);
    if (!ca || !set.keys.smime) continue;
    const id = await caKeyId(ca.ca);
    const group = byCa.get(id) ?? { ca, serials: new Set<string>() };
    group.serials.add(set.keys.smime.serialNumber);
    byCa.set(id, group);
  }
  const issued: string[] = [];
  if (fresh && !byCa.has(await caKeyId(fresh.ca))) issued.push(await firstCrl(fresh, now));
  for (const [id, { ca, serials }] of byCa) {
    const before = previousCrls.find((c) => crlIssuerKey(Buffer.from(c, 'base64'))?.keyId === id);
    const previous = before ? await readCrl(Buffer.from(before, 'base64'), ca.ca) : undefined;
    const entries: CrlEntry[] = (previous?.entries ?? []).filter((e) => !serials.has(e.serialNumber));
    for (const serialNumber of serials) entries.push({ serialNumber, revocationDate: now, reason: crlReason(reason) });
    issued.push((await issueCrl({ ...ca, now, entries, number: (previous?.number ?? 0) + 1 })).toString('base64'));
  }
  return { certificates, crls: carriedCrls(issued, previousCrls, now) };
}

/** A domain CA's first CRL (RFC 5280 §5): empty, CRL number 1 (§5.2.3), base64 of its DER. */
async function firstCrl(ca: DomainCa, now: Date): Promise<string> {
  return (await issueCrl({ ...ca, now, entries: [], number: 1 })).toString('base64');
}

/**
 * `crls` with a first, empty CRL of the domain CA of `set` in front (the newest CA's first) when
 * none of them is that CA's, so that the CRL distribution point (RFC 5280 §4.2.1.13) of its
 * leaves resolves from the start; `crls` as they are when one is, or without a CA key here.
 */
export async function withCaCrl(set: KeySet, crls: string[] | undefined, now: Date): Promise<string[] | undefined> {
  const ca = domainCa(set);
  if (!ca) return crls;
  const id = await caKeyId(ca.ca);
  if (crls?.some((c) => crlIssuerKey(Buffer.from(c, 'base64'))?.keyId === id)) return crls;
  return carriedCrls([await firstCrl(ca, now)], crls ?? [], now);
}

/**
 * The CRLs a record carries on: `added` first (the newest CA's first), then those of `previous`
 * from other CAs whose nextUpdate (RFC 5280 §5.1.2.5: the CA's end) is still ahead, at most MAX_CRLS.
 */
export function carriedCrls(added: string[], previous: string[], now: Date): string[] {
  const replaced = new Set(added.map((c) => crlIssuerKey(Buffer.from(c, 'base64'))?.keyId));
  const kept = previous.filter((c) => {
    const issuer = crlIssuerKey(Buffer.from(c, 'base64'));
    return issuer && !replaced.has(issuer.keyId) && (!issuer.nextUpdate || issuer.nextUpdate.getTime() > now.getTime());
  });
  return [...added, ...kept].slice(0, MAX_CRLS);
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
