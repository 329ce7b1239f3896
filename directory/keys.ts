import type { Domain } from './domain.js';
import { generateOpenPgpKey, openPgpKeyInfo, readOpenPgpKey, validateOpenPgpKey, type OpenPgpAlgorithm } from './openpgp.js';
import type { DomainRecord, DomainSecrets, OpenPgpKeyInfo, SmimeKeyInfo } from './record.js';
import { generateSmime, orderChain, readCertificates, smimeKeyInfo, validateSmimeChain } from './smime.js';

export interface KeyOptions {
  openpgp: OpenPgpAlgorithm;
  /** Validity of generated keys; the domain CA lives twice as long. */
  validDays: number;
  /**
   * Validity of S/MIME leaf certificates (keys.leafDays), at most validDays; default
   * min(365, validDays). A leaf is renewed under the same CA before it ends (docs/lifecycle.md "Renewals").
   */
  leafDays?: number;
  /** Days between announcing next keys and switching to them (default 7, docs/lifecycle.md "Roll"). */
  overlapDays?: number;
  /** Days replaced private keys stay sealed after a switch (default 30, docs/lifecycle.md "Retention"). */
  retainDays?: number;
}

export interface DomainKeySet {
  keys: DomainRecord['keys'];
  secrets: DomainSecrets;
}

/** How long a new or renewed S/MIME leaf lives: keys.leafDays, never beyond keys.validDays. */
export function leafDays(opts: Pick<KeyOptions, 'validDays' | 'leafDays'>): number {
  return Math.min(opts.leafDays ?? 365, opts.validDays);
}

/** A new OpenPGP key and S/MIME certificate (with its domain CA) for a domain. */
export async function generateDomainKeys(domain: Domain, opts: KeyOptions, now: Date, crlUrl?: string): Promise<DomainKeySet> {
  const [pgp, smime] = await Promise.all([
    generateOpenPgpKey(domain, { algorithm: opts.openpgp, now, validDays: opts.validDays }),
    generateSmime(domain, { now, validDays: opts.validDays, leafDays: leafDays(opts), crlUrl }),
  ]);
  return {
    keys: { openpgp: await openPgpKeyInfo(pgp.publicKey), smime: smimeKeyInfo([smime.leaf, smime.ca]) },
    secrets: {
      openpgp: { armored: pgp.privateArmored },
      smime: { keyPkcs8Pem: smime.keyPkcs8Pem, caKeyPkcs8Pem: smime.caKeyPkcs8Pem },
    },
  };
}

/** Reads and validates a partner's OpenPGP key (armored or binary) for a domain. */
export async function importOpenPgp(data: string | Uint8Array, domain: Domain, now: Date): Promise<OpenPgpKeyInfo> {
  const key = await readOpenPgpKey(data);
  await validateOpenPgpKey(key, domain, now);
  return openPgpKeyInfo(key);
}

/** Reads and validates a certificate or chain (PEM or DER) for a domain. */
export async function importCertificates(data: string | Uint8Array, domain: Domain, now: Date): Promise<SmimeKeyInfo> {
  const chain = orderChain(readCertificates(data));
  await validateSmimeChain(chain, domain, now);
  return smimeKeyInfo(chain);
}
