import { renderLdif } from './ldif.js';

/**
 * The schema an OpenLDAP server needs, beyond core, cosine and inetorgperson, to hold the
 * exported entries (docs/ldap.md). slapd ships no PGP schema, so we define:
 * - pgpKey and pgpCertID with the OIDs of the PGP key server schema (1.3.6.1.4.1.3401.8.2.11
 *   and .12), so tools that know that schema recognise them; unlike there, multi-valued: during a
 *   roll an entry holds the current key and the announced next one (entries.ts);
 * - mailmeshDomainKey, an AUXILIARY class (the PGP schema's pgpKeyInfo is STRUCTURAL, so it
 *   cannot sit beside inetOrgPerson), under a UUID-derived OID (ITU-T X.667 / RFC 4122 §6: 2.25.<uuid as integer>).
 * Definitions use the RFC 4512 §4.1 description syntax.
 */
const ATTRIBUTE_TYPES = [
  "( 1.3.6.1.4.1.3401.8.2.11 NAME 'pgpKey' DESC 'OpenPGP transferable public key, ASCII armored' " +
    'SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )',
  "( 1.3.6.1.4.1.3401.8.2.12 NAME 'pgpCertID' DESC 'OpenPGP key ID, 16 hex digits' " +
    'EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )',
];

const OBJECT_CLASSES = [
  "( 2.25.238642173478123747632583490235768229770 NAME 'mailmeshDomainKey' " +
    "DESC 'mailmesh domain key: the OpenPGP key of a member domain' SUP top AUXILIARY MAY ( pgpKey $ pgpCertID ) )",
];

/** The schema in slapd.conf form (`include` it after core, cosine and inetorgperson). */
export function renderSchemaFile(): string {
  return [
    '# mailmesh LDAP schema (slapd.conf form); see docs/ldap.md',
    ...ATTRIBUTE_TYPES.map((d) => `attributetype ${d}`),
    ...OBJECT_CLASSES.map((d) => `objectclass ${d}`),
  ].join('\n') + '\n';
}

/** The schema as a cn=config entry (`ldapadd -Y EXTERNAL -H ldapi:/// -f` it, or slapadd -n0). */
export function renderSchemaLdif(): string {
  return renderLdif(
    [
      {
        dn: 'cn=mailmesh,cn=schema,cn=config',
        attributes: [
          { type: 'objectClass', values: ['olcSchemaConfig'] },
          { type: 'cn', values: ['mailmesh'] },
          { type: 'olcAttributeTypes', values: ATTRIBUTE_TYPES },
          { type: 'olcObjectClasses', values: OBJECT_CLASSES },
        ],
      },
    ],
    'mailmesh LDAP schema (cn=config form); see docs/ldap.md',
  );
}
