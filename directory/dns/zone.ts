import { openPgpKeyData, openPgpKeyOwner, pinText, PIN_LABEL, smimeaData, smimeaOwner } from '../dane.js';
import { domainKeyAddress, parseAddress, parseDomain, type Domain } from '../domain.js';
import { isMailmeshError, MailmeshError } from '../errors.js';
import type { DomainRecord } from '../record.js';
import { addressRdata, labelsToWire, nameToWire, smimeaRdata, soaRdata, txtPresentation, txtRdata, TYPE } from '../dnswire.js';

/**
 * The zones the directory is authoritative for, as resource records with both their wire
 * RDATA and their master-file text (RFC 1035 §5), built from domain records. Pure: the
 * server compiles it into answers, `zone export` prints it.
 */

export interface ZoneOptions {
  /** The federation zone, e.g. dir.mailmesh.test. */
  zone: string;
  ttl: number;
  /** SOA RNAME as a mail address (RFC 1035 §8). */
  hostmaster: string;
  /** NS names; the first is the SOA MNAME. */
  nameservers: string[];
  /** Member domains whose RFC 7929/8162 owner names (and `_mailmesh` pin) we serve as their authority. */
  authoritativeFor: string[];
  /** Put into every pin TXT as `dir=`. */
  directoryUrl: string;
  /** Addresses of the name servers that lie inside a zone we serve: their A/AAAA (glue, RFC 1034 §4.2.1). */
  nameserverAddresses?: string[];
  /** The transparency log's signed-note verifier key, published at LOG_KEY_LABEL.<zone> (docs/transparency.md). */
  logVerifierKey?: string;
}

/** Owner label of the TXT that publishes the log's verifier key in the federation zone. */
export const LOG_KEY_LABEL = '_mailmesh-log';

/** The TXT text at `_mailmesh-log.<zone>`: `v=mmlog1; vkey=<C2SP signed-note vkey>`. */
export function logKeyText(vkey: string): string {
  return `v=mmlog1; vkey=${vkey}`;
}

interface ZoneRecord {
  /** Lower-case text name, no trailing dot. */
  owner: string;
  type: number;
  ttl: number;
  rdata: Buffer;
  /** RDATA in master-file presentation form. */
  text: string;
}

export interface Zone {
  apex: Domain;
  /** records[0] is the SOA. */
  records: ZoneRecord[];
}

/** SOA timers (RFC 1035 §3.3.13): secondaries poll every 10 minutes, retry after 1, keep the zone two weeks. */
const SOA_TIMERS = { refresh: 600, retry: 60, expire: 1209600 } as const;

/** Options checked once at start: names canonical, every problem a CONFIG_INVALID. */
export function checkZoneOptions(o: ZoneOptions): ZoneOptions {
  try {
    if (o.nameservers.length === 0) throw new MailmeshError('CONFIG_INVALID', 'dns.nameservers: at least one name server');
    const hm = parseAddress(o.hostmaster);
    return {
      ...o,
      zone: parseDomain(o.zone),
      hostmaster: `${hm.local}@${hm.domain}`,
      nameservers: o.nameservers.map((n) => parseDomain(n)),
      authoritativeFor: [...new Set(o.authoritativeFor.map((d) => parseDomain(d, { minLabels: 1 })))],
      nameserverAddresses: (o.nameserverAddresses ?? []).map((ip) => (addressRdata(ip), ip)),
    };
  } catch (e) {
    if (isMailmeshError(e, 'CONFIG_INVALID')) throw e;
    throw new MailmeshError('CONFIG_INVALID', `dns: ${(e as Error).message}`, { cause: e });
  }
}

/** RFC 1035 §5.1: a label in text form, with '.', '"', '\', ';' and non-printable octets escaped. */
function labelText(label: string): string {
  return [...Buffer.from(label, 'utf8')]
    .map((c) => (c <= 0x20 || c >= 0x7f ? `\\${String(c).padStart(3, '0')}` : /[."\\;()$@]/.test(String.fromCharCode(c)) ? `\\${String.fromCharCode(c)}` : String.fromCharCode(c)))
    .join('');
}

function soaRecord(apex: Domain, o: ZoneOptions, serial: number): ZoneRecord {
  const hm = parseAddress(o.hostmaster);
  // RFC 1035 §8: the RNAME's first label is the mailbox's local part (dots in it stay inside the label).
  const rnameLabels = [hm.local, ...hm.domain.split('.')];
  const t = { ...SOA_TIMERS, serial, minimum: o.ttl }; // RFC 2308 §4: MINIMUM is the negative-caching TTL
  return {
    owner: apex,
    type: TYPE.SOA,
    ttl: o.ttl,
    rdata: soaRdata({ mname: nameToWire(o.nameservers[0]!), rname: labelsToWire(rnameLabels), ...t }),
    text: `${o.nameservers[0]}. ${rnameLabels.map(labelText).join('.')}. ${t.serial} ${t.refresh} ${t.retry} ${t.expire} ${t.minimum}`,
  };
}

function apexRecords(apex: Domain, o: ZoneOptions, serial: number): ZoneRecord[] {
  const inZone = o.nameservers.filter((ns) => ns === apex || ns.endsWith(`.${apex}`));
  return [
    soaRecord(apex, o, serial),
    ...o.nameservers.map((ns) => ({ owner: apex, type: TYPE.NS, ttl: o.ttl, rdata: nameToWire(ns), text: `${ns}.` })),
    // RFC 1034 §4.2.1: a name server inside its own zone needs its address in the zone.
    ...inZone.flatMap((ns) => (o.nameserverAddresses ?? []).map((ip) => ({ owner: ns, ttl: o.ttl, text: ip, ...addressRdata(ip) }))),
  ];
}

/** The published forms of one set of keys. */
interface KeySetRdata {
  /** The `_mailmesh` pin naming these keys. */
  txt: string;
  openpgpkey?: Buffer;
  smimea?: { usage: 3; selector: 0; matchingType: 0; data: Buffer };
}

/** The published forms of one record's keys, and of its announced next keys; cached by the caller per (domain, serial). */
export interface KeyRdata extends KeySetRdata {
  next?: KeySetRdata;
}

async function keySetRdata(r: DomainRecord, keys: DomainRecord['keys'], directoryUrl: string): Promise<KeySetRdata> {
  const leaf = keys.smime?.chain[0];
  return {
    txt: pinText({ ...r, keys }, directoryUrl),
    openpgpkey: keys.openpgp && (await openPgpKeyData(keys.openpgp.armored)),
    smimea: leaf ? smimeaData(leaf) : undefined,
  };
}

async function keyRdata(r: DomainRecord, directoryUrl: string): Promise<KeyRdata> {
  const next = r.next?.openpgp || r.next?.smime ? await keySetRdata(r, r.next, directoryUrl) : undefined;
  return { ...(await keySetRdata(r, r.keys, directoryUrl)), ...(next && { next }) };
}

/**
 * The RRs of one set of keys at their owner names: the TXT pin (when `owner.txt`), OPENPGPKEY
 * (RFC 7929 §2.1) and SMIMEA (RFC 8162 §2).
 */
function keySetRecords(owner: { txt?: string; openpgpkey?: string; smimea?: string }, k: KeySetRdata, ttl: number): ZoneRecord[] {
  const out: ZoneRecord[] = [];
  if (owner.txt) {
    out.push({ owner: owner.txt, type: TYPE.TXT, ttl, rdata: txtRdata(k.txt), text: txtPresentation(k.txt) });
  }
  // RFC 7929 §2.3: the presentation form of OPENPGPKEY RDATA is base64.
  if (k.openpgpkey && owner.openpgpkey) out.push({ owner: owner.openpgpkey, type: TYPE.OPENPGPKEY, ttl, rdata: k.openpgpkey, text: k.openpgpkey.toString('base64') });
  // RFC 6698 §2.2: usage, selector and matching type as numbers, the data in hex.
  if (k.smimea && owner.smimea) {
    const s = k.smimea;
    out.push({ owner: owner.smimea, type: TYPE.SMIMEA, ttl, rdata: smimeaRdata(s), text: `${s.usage} ${s.selector} ${s.matchingType} ${s.data.toString('hex').toUpperCase()}` });
  }
  return out;
}

/**
 * A record's RRs at its owner names, the current keys first. During a roll (docs/lifecycle.md
 * "Roll") the next keys go where `next` says: in the federation zone their OPENPGPKEY and SMIMEA
 * beside the current ones (the TXT pin there names the current keys only, so a reader takes the
 * RR the pin names); in the domain's own zone a second `_mailmesh` TXT naming them (so that a
 * proof of domain control for the next keys passes at the switch), while the RFC 7929/8162
 * owner names keep the current keys alone (two pins there could not tell a reader which is current).
 */
function keyRecords(owner: { txt: string; openpgpkey: string; smimea: string }, k: KeyRdata, ttl: number, next: 'keys' | 'pin'): ZoneRecord[] {
  const out = keySetRecords(owner, k, ttl);
  if (k.next) out.push(...keySetRecords(next === 'keys' ? { openpgpkey: owner.openpgpkey, smimea: owner.smimea } : { txt: owner.txt }, k.next, ttl));
  return out;
}

export interface BuiltZones {
  zones: Zone[];
  /** Domains left out, with the reason (a name too long for the zone, unreadable key material). */
  skipped: { domain: string; reason: string }[];
}

/**
 * The federation zone and each `authoritativeFor` zone at one serial (RFC 1035 §3.3.13: the
 * same SOA serial for all; it only grows because the store serial only grows).
 * - `<D>.<zone>`: TXT pin, OPENPGPKEY, SMIMEA (docs/architecture.md "Publication") for every live record;
 *   stale records are published as well (their keys are still the domain's; see docs/dns.md); during a
 *   roll the next keys' OPENPGPKEY and SMIMEA too (keyRecords).
 * - in zone D when D is in `authoritativeFor`: SOA/NS at D, `_mailmesh.D` TXT, and
 *   `<hash>._openpgpkey.D` / `<hash>._smimecert.D` for domainkey@D (RFC 7929 §3, RFC 8162 §3); during a
 *   roll a second `_mailmesh.D` TXT naming the next keys.
 */
export async function buildZones(
  records: DomainRecord[],
  serial: number,
  opts: ZoneOptions,
  cache: Map<string, { serial: number; rdata: KeyRdata }> = new Map(),
): Promise<BuiltZones> {
  const o = checkZoneOptions(opts);
  const fed: Zone = { apex: o.zone as Domain, records: apexRecords(o.zone as Domain, o, serial) };
  if (o.logVerifierKey) {
    const text = logKeyText(o.logVerifierKey);
    fed.records.push({ owner: `${LOG_KEY_LABEL}.${o.zone}`, type: TYPE.TXT, ttl: o.ttl, rdata: txtRdata(text), text: txtPresentation(text) });
  }
  const own = new Map<string, Zone>(o.authoritativeFor.map((d) => [d, { apex: d as Domain, records: apexRecords(d as Domain, o, serial) }]));
  const skipped: BuiltZones['skipped'] = [];
  const seen = new Set<string>();
  for (const r of [...records].sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0))) {
    if (r.status === 'deleted') continue;
    seen.add(r.domain);
    try {
      let k = cache.get(r.domain);
      if (!k || k.serial !== r.serial) cache.set(r.domain, (k = { serial: r.serial, rdata: await keyRdata(r, o.directoryUrl) }));
      const name = `${r.domain}.${o.zone}`;
      nameToWire(name); // RFC 1035 §3.1: D plus the zone must still fit in 255 octets
      fed.records.push(...keyRecords({ txt: name, openpgpkey: name, smimea: name }, k.rdata, o.ttl, 'keys'));
      const zone = own.get(r.domain);
      if (zone) {
        const a = domainKeyAddress(r.domain);
        zone.records.push(...keyRecords({ txt: `${PIN_LABEL}.${r.domain}`, openpgpkey: openPgpKeyOwner(a), smimea: smimeaOwner(a) }, k.rdata, o.ttl, 'pin'));
      }
    } catch (e) {
      if (!isMailmeshError(e)) throw e;
      skipped.push({ domain: r.domain, reason: e.message });
    }
  }
  for (const d of cache.keys()) if (!seen.has(d)) cache.delete(d);
  return { zones: [fed, ...own.values()], skipped };
}
