import ldap from 'ldapjs';
import { domainKeyAddress, formatAddress, type Domain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import { domainKeyUserId } from '../openpgp.js';
import type { DomainRecord } from '../record.js';
import { pemToDer } from '../smime.js';

/**
 * The LDAP view of the directory (docs/architecture.md "Publication", LDAP): one entry for the base and
 * one per member domain. The server and the LDIF export render the same entries.
 */
export interface LdapAttribute {
  /** Attribute description (RFC 4512 §2.5): type plus options, e.g. `userCertificate;binary`. */
  type: string;
  values: (string | Buffer)[];
}

export interface LdapEntry {
  dn: string;
  /** Comparison key of the DN (see dnKey). */
  key: string;
  /** Comparison key of the parent DN; '' for the base entry's parent. */
  parentKey: string;
  /** The member domain an entry stands for (absent on the base entry). */
  domain?: Domain;
  attributes: LdapAttribute[];
}

/** What we use of an ldapjs 3 (@ldapjs/dn) DN; the bundled @types/ldapjs describe v2. */
interface Dn {
  length: number;
  rdnAt(i: number): { keys(): Iterable<string>; getValue(name: string): string };
  clone(): Dn;
  shift(): unknown;
  toString(): string;
}

/** RFC 4514 §3: parses a DN string; throws on a malformed one. */
const parseDn = ldap.parseDN as unknown as (dn: string) => Dn;

/** The structural object class for each naming attribute a base DN may start with. */
const BASE_CLASSES: Record<string, string> = {
  dc: 'domain', // RFC 4524 §3.4 (cosine)
  o: 'organization', // RFC 4519 §3.9
  ou: 'organizationalUnit', // RFC 4519 §3.11
};

/**
 * A DN's comparison key. RFC 4514 §2 string form as ldapjs normalises it (spacing, escapes),
 * lower-cased: every naming attribute we use (dc, o, ou, mail) has a case-insensitive
 * equality rule (RFC 4517 §4.2.11, §4.2.3). Throws on a malformed DN.
 */
export function dnKey(dn: string): string {
  return parseDn(dn).toString().toLowerCase();
}

/** The configured base DN, checked: a single-valued RDN of dc, o or ou. Returns its normal form. */
export function checkBase(base: string): string {
  let dn: Dn;
  try {
    dn = parseDn(base);
  } catch (e) {
    throw new MailmeshError('CONFIG_INVALID', `ldap.base ${JSON.stringify(base)}: ${(e as Error).message}`);
  }
  const rdn = dn.length > 0 ? dn.rdnAt(0) : undefined;
  const names = rdn ? [...rdn.keys()].map((k) => k.toLowerCase()) : [];
  if (names.length !== 1 || !BASE_CLASSES[names[0]!]) {
    throw new MailmeshError('CONFIG_INVALID', `ldap.base ${JSON.stringify(base)}: must start with one dc=, o= or ou= component`);
  }
  return dn.toString();
}

/** The base entry: its naming attribute and the matching structural class. */
export function baseEntry(base: string): LdapEntry {
  const dn = parseDn(checkBase(base));
  const rdn = dn.rdnAt(0);
  const name = [...rdn.keys()][0]!;
  const value = rdn.getValue(name);
  const parent = dn.clone();
  parent.shift();
  return {
    dn: dn.toString(),
    key: dn.toString().toLowerCase(),
    parentKey: parent.toString().toLowerCase(),
    attributes: [
      { type: 'objectClass', values: ['top', BASE_CLASSES[name.toLowerCase()]!] },
      { type: name, values: [value] },
    ],
  };
}

/**
 * One member domain's entry: `mail=domainkey@<domain>,<base>`. A canonical domain is LDH
 * A-labels only (domain.ts), so the RDN value needs no RFC 4514 §2.4 escaping.
 * inetOrgPerson (RFC 2798) carries mail, cn, sn and userCertificate (transferred with the
 * ;binary option, RFC 4523 §2.1 / RFC 4522); the auxiliary class mailmeshDomainKey
 * (schema.ts) adds pgpKey (ASCII-armored, RFC 4880 §6.2) and pgpCertID (64-bit key ID).
 * During a roll (docs/lifecycle.md "Roll") the announced next keys are further values of
 * userCertificate;binary, pgpKey and pgpCertID, after the current ones, and `description` names both.
 * Returns undefined for a record with no keys: there is nothing to publish.
 */
function domainEntry(record: DomainRecord, base: string): LdapEntry | undefined {
  const { openpgp, smime } = record.keys;
  if (record.status === 'deleted' || (!openpgp && !smime)) return undefined;
  const sets = [record.keys, ...(record.next ? [record.next] : [])];
  const pgpKeys = sets.map((k) => k.openpgp).filter((k) => k !== undefined);
  const leaves = sets.map((k) => k.smime?.chain[0]).filter((c) => c !== undefined);
  const mail = formatAddress(domainKeyAddress(record.domain));
  const parent = parseDn(base).toString();
  const dn = `mail=${mail},${parent}`;
  const describe = (k: DomainRecord['keys'], prefix: string) => [
    k.openpgp && `${prefix}openpgp ${k.openpgp.fingerprint}`,
    k.smime && `${prefix}smime sha256 ${k.smime.fingerprint}`,
  ];
  const attributes: LdapAttribute[] = [
    { type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'inetOrgPerson', ...(pgpKeys.length ? ['mailmeshDomainKey'] : [])] },
    { type: 'mail', values: [mail] },
    { type: 'cn', values: [domainKeyUserId(record.domain).name] },
    { type: 'sn', values: [record.domain] },
    {
      type: 'description',
      values: [
        [`mailmesh domain key of ${record.domain}`, ...describe(record.keys, ''), ...(record.next ? describe(record.next, 'next ') : [])].filter(Boolean).join('; '),
      ],
    },
  ];
  if (leaves.length) attributes.push({ type: 'userCertificate;binary', values: leaves.map(pemToDer) });
  if (pgpKeys.length) {
    attributes.push({ type: 'pgpKey', values: pgpKeys.map((k) => k.armored) });
    attributes.push({ type: 'pgpCertID', values: pgpKeys.map((k) => k.keyId) });
  }
  return { dn, key: dnKey(dn), parentKey: parent.toLowerCase(), domain: record.domain, attributes };
}

/** The base entry followed by one entry per published domain, in domain order. */
export function buildEntries(records: DomainRecord[], base: string): LdapEntry[] {
  const domains = records
    .map((r) => domainEntry(r, base))
    .filter((e): e is LdapEntry => e !== undefined)
    .sort((a, b) => (a.domain! < b.domain! ? -1 : a.domain! > b.domain! ? 1 : 0));
  return [baseEntry(base), ...domains];
}
