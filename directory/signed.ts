import * as openpgp from 'openpgp';
import { parseDomain, type Domain } from './domain.js';
import { isMailmeshError, MailmeshError } from './errors.js';
import { canonicalize, parseCanonical } from './jcs.js';
import { importCertificates, importOpenPgp } from './keys.js';
import { readOpenPgpKey } from './openpgp.js';
import type { DomainRecord, GatewayEndpoints, OpenPgpKeyInfo, SignedRecord, SmimeKeyInfo, TunnelFormat } from './record.js';

/**
 * Signed domain records (docs/federation.md "Signed records"): what a domain says about
 * itself, as RFC 8785 canonical JSON with a detached OpenPGP signature (RFC 4880 §5.2.1
 * type 0x00, binary document) by its domain key. Everything read from the network goes
 * through `verifySigned` before use.
 */

export const RECORD_TYPE = 'mailmesh.domain-record';
export const LEAVE_TYPE = 'mailmesh.leave';
/** A refusal of a pending key recovery by the held key (docs/lifecycle.md "Recover"). */
export const VETO_TYPE = 'mailmesh.veto';

/** Public keys as they travel: the armored OpenPGP key (RFC 4880 §6.2) and the PEM chain, leaf first. */
export interface PayloadKeys {
  openpgp?: string;
  smime?: string[];
}

export interface RecordPayload {
  v: 1;
  type: typeof RECORD_TYPE;
  domain: string;
  keys: PayloadKeys;
  gateways: GatewayEndpoints;
  formats: TunnelFormat[];
  /** Optional (older records lack it, and older verifiers ignore it): see record.ts SMIME_AEAD. */
  capabilities?: string[];
  validity: { notBefore: string; notAfter: string | null };
  issued: string;
  /** Rollover: the keys that will replace `keys`, announced under the current key's signature. */
  next?: PayloadKeys;
  /** Revocation certificates (armored, RFC 4880 §5.2.1 type 0x20) of keys this domain no longer uses. */
  revocations?: string[];
  /**
   * The certificate revocation lists (RFC 5280 §5) of the domain's CAs, base64 of their DER, one
   * per CA, the newest CA's first, listing revoked S/MIME leaves; at most MAX_CRLS.
   */
  crls?: string[];
}

/** What a record payload may carry beside the record's own fields. */
export interface PayloadExtra {
  next?: PayloadKeys;
  revocations?: string[];
  crls?: string[];
}

/** Bound of each of `crls` (base64 characters): a CRL of some hundred entries. */
export const MAX_CRL_BASE64 = 65_536;
/** Bound of `crls`: the CRLs of the domain's last CAs (a new CA comes with each compromise). */
export const MAX_CRLS = 8;

export interface LeavePayload {
  v: 1;
  type: typeof LEAVE_TYPE;
  domain: string;
  /** The OpenPGP fingerprint of the key the leave is signed with (the key the directory holds). */
  fingerprint: string;
  issued: string;
}

/** A veto: the held key refuses the pending recovery to the key `fingerprint` (the new OpenPGP key). */
export interface VetoPayload {
  v: 1;
  type: typeof VETO_TYPE;
  domain: string;
  /** The OpenPGP fingerprint of the pending new key that is refused. */
  fingerprint: string;
  issued: string;
}

export interface VerifiedKeys {
  openpgp?: OpenPgpKeyInfo;
  smime?: SmimeKeyInfo;
}

export interface VerifiedRecord {
  payload: RecordPayload;
  domain: Domain;
  keys: VerifiedKeys & { openpgp: OpenPgpKeyInfo };
  next?: VerifiedKeys;
  /** Fingerprints (upper-case hex) of every key whose signature over the payload verified, among those tried. */
  signers: string[];
}

function malformed(detail: string): never {
  throw new MailmeshError('SIGNED_RECORD_MALFORMED', detail);
}

/** What a record says, in the form that is signed. */
export function recordPayload(r: Pick<DomainRecord, 'domain' | 'keys' | 'gateways' | 'formats' | 'capabilities' | 'validity'>, issued: Date, extra: PayloadExtra = {}): RecordPayload {
  return {
    v: 1,
    type: RECORD_TYPE,
    domain: r.domain,
    keys: payloadKeys(r.keys),
    gateways: r.gateways,
    formats: r.formats,
    ...(r.capabilities?.length ? { capabilities: r.capabilities } : {}),
    validity: r.validity,
    issued: issued.toISOString(),
    ...(extra.next ? { next: extra.next } : {}),
    ...(extra.revocations?.length ? { revocations: extra.revocations } : {}),
    ...(extra.crls?.length ? { crls: extra.crls } : {}),
  };
}

export function payloadKeys(keys: VerifiedKeys): PayloadKeys {
  return {
    ...(keys.openpgp ? { openpgp: keys.openpgp.armored } : {}),
    ...(keys.smime ? { smime: keys.smime.chain } : {}),
  };
}

async function privateKeys(armored: string[]): Promise<openpgp.PrivateKey[]> {
  try {
    return await Promise.all(armored.map((a) => openpgp.readPrivateKey({ armoredKey: a })));
  } catch (e) {
    throw new MailmeshError('KEY_UNREADABLE', (e as Error).message, { cause: e });
  }
}

/** RFC 4880 §11.4: a detached signature over the canonical payload, by each of the keys (the domain key; in a rollover also the old one). */
export async function signPayload(payload: RecordPayload | LeavePayload | VetoPayload, privateArmored: string[], date: Date): Promise<SignedRecord> {
  const text = canonicalize(payload);
  const message = await openpgp.createMessage({ binary: Buffer.from(text, 'utf8') });
  const signature = await openpgp.sign({ message, signingKeys: await privateKeys(privateArmored), detached: true, date, format: 'armored' });
  return { payload: text, signature: signature as string };
}

/** The shape check of a signed object from the network: two strings, nothing else needed. */
export function asSigned(input: unknown): SignedRecord {
  if (!input || typeof input !== 'object') malformed('expected {payload, signature}');
  const { payload, signature } = input as Record<string, unknown>;
  if (typeof payload !== 'string' || typeof signature !== 'string') malformed('payload and signature must be strings');
  if (payload.length > 200_000 || signature.length > 20_000) malformed('too large');
  return { payload, signature };
}

/**
 * Fingerprints of the given keys whose signature in `signed` verifies over the payload at `date`.
 * A signature that does not parse is SIGNED_RECORD_MALFORMED; a wrong one simply does not count.
 */
export async function validSigners(signed: SignedRecord, keys: openpgp.PublicKey[], date: Date): Promise<string[]> {
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature: signed.signature });
  } catch (e) {
    malformed(`signature: ${(e as Error).message}`);
  }
  const message = await openpgp.createMessage({ binary: Buffer.from(signed.payload, 'utf8') });
  const out: string[] = [];
  for (const key of keys) {
    try {
      const result = await openpgp.verify({ message, signature, verificationKeys: key, date, expectSigned: false });
      const results = await Promise.all(result.signatures.map((s) => s.verified.then(() => true, () => false)));
      if (results.some(Boolean)) out.push(key.getFingerprint().toUpperCase());
    } catch {
      // a key that signed nothing here
    }
  }
  return out;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') malformed(`${what} must be a string`);
  return v;
}

function isoDate(v: unknown, what: string): string {
  const s = str(v, what);
  if (Number.isNaN(Date.parse(s))) malformed(`${what} is not a date`);
  return s;
}

function keysOf(v: unknown, what: string): PayloadKeys {
  if (!v || typeof v !== 'object' || Array.isArray(v)) malformed(`${what} must be an object`);
  const k = v as Record<string, unknown>;
  if (k.openpgp !== undefined) str(k.openpgp, `${what}.openpgp`);
  if (k.smime !== undefined && (!Array.isArray(k.smime) || k.smime.length === 0 || !k.smime.every((c) => typeof c === 'string'))) {
    malformed(`${what}.smime must be a list of PEM certificates`);
  }
  return k as PayloadKeys;
}

/** Checks every field of a record payload (untrusted JSON) and returns it typed. */
export function checkRecordPayload(value: unknown): RecordPayload {
  if (!value || typeof value !== 'object' || Array.isArray(value)) malformed('the payload must be an object');
  const p = value as Record<string, unknown>;
  if (p.v !== 1 || p.type !== RECORD_TYPE) malformed(`expected v 1 and type ${RECORD_TYPE}`);
  str(p.domain, 'domain');
  keysOf(p.keys, 'keys');
  if (p.next !== undefined) keysOf(p.next, 'next');
  const g = p.gateways as Record<string, unknown> | undefined;
  if (!g || typeof g !== 'object' || !Array.isArray(g.smtp) || !g.smtp.every((s) => typeof s === 'string')) malformed('gateways.smtp must be a list');
  if (g.https !== undefined) str(g.https, 'gateways.https');
  if (!Array.isArray(p.formats) || !p.formats.every((f) => f === 'pgp-mime' || f === 'smime')) malformed('formats must be pgp-mime and/or smime');
  const caps = p.capabilities;
  // Names as the `_mailmesh` TXT carries them (directory/dane.ts pinText): letters, digits, hyphens.
  if (caps !== undefined && (!Array.isArray(caps) || caps.length > 32 || !caps.every((c) => typeof c === 'string' && /^[a-z0-9-]{1,64}$/i.test(c)))) {
    malformed('capabilities must be a list of at most 32 names (letters, digits, hyphens)');
  }
  const val = p.validity as Record<string, unknown> | undefined;
  if (!val || typeof val !== 'object') malformed('validity must be an object');
  isoDate(val.notBefore, 'validity.notBefore');
  if (val.notAfter !== null) isoDate(val.notAfter, 'validity.notAfter');
  isoDate(p.issued, 'issued');
  if (p.revocations !== undefined && (!Array.isArray(p.revocations) || !p.revocations.every((r) => typeof r === 'string'))) {
    malformed('revocations must be a list of armored revocation certificates');
  }
  if (p.crls !== undefined) {
    // RFC 4648 §4 base64 (padded) of each CRL's DER (RFC 5280 §5).
    const base64 = (c: unknown) => typeof c === 'string' && c.length > 0 && c.length <= MAX_CRL_BASE64 && c.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(c);
    if (!Array.isArray(p.crls) || p.crls.length === 0 || p.crls.length > MAX_CRLS || !p.crls.every(base64)) {
      malformed(`crls must be a list of 1 to ${MAX_CRLS} CRLs, each base64 of at most ${MAX_CRL_BASE64} characters`);
    }
  }
  return p as unknown as RecordPayload;
}

async function verifiedKeys(k: PayloadKeys, domain: Domain, now: Date): Promise<VerifiedKeys> {
  return {
    ...(k.openpgp !== undefined ? { openpgp: await importOpenPgp(k.openpgp, domain, now) } : {}),
    ...(k.smime !== undefined ? { smime: await importCertificates(k.smime.join('\n'), domain, now) } : {}),
  };
}

/**
 * Verifies a signed record: canonical JSON, every field, keys bound to the domain and valid
 * at `now` (directory/keys.ts), and a good signature by its own OpenPGP key. `alsoTry` are
 * more keys (a pinned old key) whose signatures are looked for and reported in `signers`.
 */
export async function verifySigned(input: unknown, now: Date, alsoTry: string[] = []): Promise<VerifiedRecord> {
  const signed = asSigned(input);
  const payload = checkRecordPayload(parseCanonical(signed.payload));
  const domain = parseDomain(payload.domain);
  if (payload.keys.openpgp === undefined) malformed('a signed record needs an OpenPGP domain key (it signs the record)');
  const keys = (await verifiedKeys(payload.keys, domain, now)) as VerifiedRecord['keys'];
  const next = payload.next ? await verifiedKeys(payload.next, domain, now) : undefined;
  const own = await readOpenPgpKey(payload.keys.openpgp);
  const others = await Promise.all(alsoTry.map((a) => readOpenPgpKey(a)));
  const signers = await validSigners(signed, [own, ...others], now);
  if (!signers.includes(keys.openpgp.fingerprint)) throw new MailmeshError('SIGNATURE_INVALID', `${domain}: no valid signature by ${keys.openpgp.fingerprint}`);
  return { payload, domain, keys, ...(next ? { next } : {}), signers };
}

/**
 * Verifies a signed statement of `type` (leave, veto) against the key the directory holds for
 * the domain: canonical JSON, the fields, and a good signature by that key.
 */
async function verifyStatement<T extends LeavePayload | VetoPayload>(input: unknown, type: T['type'], heldKeyArmored: string, now: Date): Promise<T> {
  const signed = asSigned(input);
  const p = parseCanonical(signed.payload) as Record<string, unknown> | null;
  if (!p || typeof p !== 'object' || p.v !== 1 || p.type !== type) malformed(`expected v 1 and type ${type}`);
  parseDomain(str(p.domain, 'domain'));
  str(p.fingerprint, 'fingerprint');
  isoDate(p.issued, 'issued');
  const held = await readOpenPgpKey(heldKeyArmored);
  const signers = await validSigners(signed, [held], now);
  if (signers.length === 0) throw new MailmeshError('SIGNATURE_INVALID', `${type} of ${String(p.domain)} is not signed by the held key`);
  return p as unknown as T;
}

/** Verifies a signed leave statement against the key the directory holds for the domain. */
export function verifyLeave(input: unknown, heldKeyArmored: string, now: Date): Promise<LeavePayload> {
  return verifyStatement<LeavePayload>(input, LEAVE_TYPE, heldKeyArmored, now);
}

/** Verifies a signed veto of a key recovery against the key the directory holds for the domain. */
export function verifyVeto(input: unknown, heldKeyArmored: string, now: Date): Promise<VetoPayload> {
  return verifyStatement<VetoPayload>(input, VETO_TYPE, heldKeyArmored, now);
}

/**
 * Fingerprints of the keys among `armoredKeys` that one of the revocation certificates revokes
 * (RFC 4880 §5.2.1 0x20, verified against that key). Unreadable certificates are skipped.
 */
export async function revokedBy(revocations: string[] | undefined, armoredKeys: string[], now: Date): Promise<string[]> {
  const out: string[] = [];
  for (const armored of armoredKeys) {
    const key = await readOpenPgpKey(armored);
    for (const cert of revocations ?? []) {
      try {
        const revoked = await openpgp.revokeKey({ key, revocationCertificate: cert, format: 'object', date: now });
        if (await revoked.publicKey.isRevoked(undefined, undefined, now)) {
          out.push(key.getFingerprint().toUpperCase());
          break;
        }
      } catch (e) {
        if (isMailmeshError(e)) throw e;
      }
    }
  }
  return out;
}
