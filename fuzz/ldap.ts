// What the LDAP face does with one framed message (directory/ldap/ldap.ts #connection and
// #search): checkMessage, then ldapjs's parser for bind/unbind/search/abandon, then our filter
// evaluation over entries. ldapjs parse errors end the connection there: a clean rejection.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { checkMessage } from '../directory/ldap/ber.js';
import type { LdapEntry } from '../directory/ldap/entries.js';
import { compileFilter, type FilterNode } from '../directory/ldap/filter.js';
import { MailmeshError } from '../directory/errors.js';

type LdapjsParser = EventEmitter & { write(data: Buffer): boolean };
const Parser = createRequire(import.meta.url)('ldapjs/lib/messages/parser.js') as new (opts?: object) => LdapjsParser;

const LDAPJS_OPS = new Set([0x60, 0x42, 0x63, 0x50]);
const SILENT = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child() { return SILENT; } };

const entry = (dn: string, attributes: [string, string[]][]): LdapEntry => ({
  dn, key: dn.toLowerCase(), parentKey: dn.toLowerCase().split(',').slice(1).join(','), attributes: attributes.map(([type, values]) => ({ type, values })),
});

export const ENTRIES: LdapEntry[] = [
  entry('dc=mailmesh', [['objectClass', ['top', 'dcObject', 'organization']], ['dc', ['mailmesh']], ['o', ['mailmesh']]]),
  entry('dc=fuzz.example,dc=mailmesh', [['objectClass', ['top', 'domain', 'pgpKeyInfo']], ['dc', ['fuzz.example']], ['mail', ['*@fuzz.example']], ['cn', ['Fuzz Example']], ['pgpCertID', ['ABCDEF0123456789']], ['pgpKey', ['-----BEGIN PGP PUBLIC KEY BLOCK-----']]]),
];

/** One framed message through the face's checks and ldapjs; a search's filter evaluated on ENTRIES. */
export function ldapMessage(msg: Buffer): void {
  const env = checkMessage(msg);
  if (!env) throw new MailmeshError('BAD_REQUEST', 'malformed LDAPMessage');
  if (!LDAPJS_OPS.has(env.op)) return;
  const parser = new Parser({ log: SILENT });
  let parsed: { filter?: FilterNode; protocolOp?: number } | undefined;
  let failed: unknown;
  parser.on('message', (m: { filter?: FilterNode; protocolOp?: number }) => (parsed = m));
  parser.on('error', (e: unknown) => (failed = e));
  try {
    parser.write(Buffer.from(msg));
  } catch (e) {
    failed = e;
  }
  if (failed !== undefined || !parsed) throw new MailmeshError('BAD_REQUEST', `ldapjs refused it: ${String(failed)}`);
  if (env.op === 0x63 && parsed.filter) {
    const matches = compileFilter(parsed.filter);
    for (const e of ENTRIES) matches(e);
  }
}
