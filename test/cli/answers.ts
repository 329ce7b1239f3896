import { wkdHash } from '../../directory/wkd.js';
import { run } from '../helpers.js';

/** What a node's faces answer about one domain: the REST record, the WKD key, DNS TXT and OPENPGPKEY, the LDAP entry. */
export interface Answers {
  rest: unknown;
  /** The binary key WKD serves (base64). */
  wkd: string;
  txt: string;
  openpgpkey: string;
  ldap: string;
}

/** host:port of each face, as serve logs them. */
export interface Faces {
  http: string;
  dns: string;
  ldap: string;
}

const split = (a: string) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: a.slice(i + 1) };
};

/**
 * Asks a running node over its real faces with real clients (fetch, kdig, ldapsearch). The HTTP
 * face's own address, which the TXT `dir=` and the record links carry, reads as `HTTP`, so two
 * nodes on different ports answer alike when they serve the same state.
 */
export async function answers(f: Faces, domain: string, zone = 'dir.mailmesh.test', base = 'dc=mailmesh'): Promise<Answers> {
  const own = (s: string) => s.split(f.http).join('HTTP');
  const rest = await fetch(`http://${f.http}/v1/domains/${domain}`);
  if (!rest.ok) throw new Error(`REST ${domain}: ${rest.status}`);
  const wkd = await fetch(`http://${f.http}/.well-known/openpgpkey/${domain}/hu/${wkdHash('domainkey')}?l=domainkey`);
  if (!wkd.ok) throw new Error(`WKD ${domain}: ${wkd.status}`);
  const dns = split(f.dns);
  const dig = async (type: string) =>
    (await run('kdig', [`@${dns.host}`, '-p', dns.port, '+short', '+tcp', `${domain}.${zone}`, type])).stdout.toString('utf8');
  const l = split(f.ldap);
  const ldap = await run('ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', `ldap://${l.host}:${l.port}`, '-b', base, `(mail=domainkey@${domain})`]);
  return {
    rest: JSON.parse(own(await rest.text())) as unknown,
    wkd: Buffer.from(await wkd.arrayBuffer()).toString('base64'),
    txt: own(await dig('TXT')),
    openpgpkey: await dig('OPENPGPKEY'),
    ldap: own(ldap.stdout.toString('utf8')),
  };
}
