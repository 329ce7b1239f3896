import ldap from 'ldapjs';
import type { Directory } from '../directory/directory.js';
import { parseDomain, type Domain } from '../directory/domain.js';
import { MailmeshError } from '../directory/errors.js';
import type { DomainRecord } from '../directory/record.js';
import { importThirdParty, type ImportOptions } from './importer.js';

/**
 * Pulls a partner's domain key from its LDAP directory (anonymous, read-only): the entry of
 * `domainkey@<domain>` (RFC 4524 mail), its `userCertificate;binary` (RFC 4523 §2.1, DER) and,
 * where the server has it, `pgpKey`. URL: `ldap://host:port/<base DN>` (RFC 4516 §2).
 */
export async function fetchFromLdap(url: string, domain: Domain, opts: { timeoutMs?: number } = {}): Promise<{ certificates: Buffer[]; pgpKeys: string[] }> {
  let base: string;
  let server: string;
  try {
    const u = new URL(url);
    if (u.protocol !== 'ldap:' && u.protocol !== 'ldaps:') throw new Error('use ldap:// or ldaps://');
    base = decodeURIComponent(u.pathname.replace(/^\//, ''));
    server = `${u.protocol}//${u.host}`;
  } catch (e) {
    throw new MailmeshError('BAD_REQUEST', `LDAP URL ${JSON.stringify(url)}: ${(e as Error).message}`);
  }
  const timeout = opts.timeoutMs ?? 10_000;
  const client = ldap.createClient({ url: [server], timeout, connectTimeout: timeout, reconnect: false });
  const unavailable = (e: unknown) => new MailmeshError('LOOKUP_UNAVAILABLE', `${server}: ${(e as Error).message ?? String(e)}`);
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', (e: unknown) => reject(unavailable(e)));
      client.once('connectError', (e: unknown) => reject(unavailable(e)));
    });
    // RFC 4515 §3: the domain is LDH only, so the filter needs no escaping.
    const filter = `(mail=domainkey@${domain})`;
    return await new Promise((resolve, reject) => {
      const certificates: Buffer[] = [];
      const pgpKeys: string[] = [];
      client.search(base, { scope: 'sub', filter, attributes: ['userCertificate;binary', 'pgpKey'], sizeLimit: 10 }, (err, res) => {
        if (err) return reject(unavailable(err));
        res.on('searchEntry', (entry) => {
          for (const a of entry.attributes) {
            const type = a.type.toLowerCase();
            if (type.startsWith('usercertificate')) certificates.push(...a.buffers.map((b) => Buffer.from(b)));
            if (type === 'pgpkey') pgpKeys.push(...([] as string[]).concat(a.values));
          }
        });
        res.on('error', (e) => reject(unavailable(e)));
        res.on('end', () => resolve({ certificates, pgpKeys }));
      });
    });
  } finally {
    client.destroy();
  }
}

/**
 * `mailmesh keys import --ldap <url> --domain <d>`: the partner's domain certificate and OpenPGP
 * key from its LDAP entry. An entry may hold more than one of each (a mailmesh directory lists a
 * roll's next keys after the current ones, docs/ldap.md): the first value of each is the one taken.
 */
export async function importFromLdap(directory: Directory, url: string, domainInput: string, o: Omit<ImportOptions, 'origin'>): Promise<DomainRecord> {
  const domain = parseDomain(domainInput);
  const { certificates, pgpKeys } = await fetchFromLdap(url, domain);
  if (certificates.length === 0 && pgpKeys.length === 0) throw new MailmeshError('NOT_FOUND', `${url} has no entry for domainkey@${domain}`);
  let record: DomainRecord | undefined;
  const first = [certificates[0], pgpKeys[0] === undefined ? undefined : Buffer.from(pgpKeys[0], 'utf8')].filter((x): x is Buffer => x !== undefined);
  for (const data of first) {
    record = await importThirdParty(directory, domain, data, { ...o, origin: url });
  }
  return record!;
}
