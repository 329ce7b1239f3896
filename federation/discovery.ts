import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { openPgpKeyOwner, PIN_LABEL, smimeaOwner } from '../directory/dane.js';
import { domainKeyAddress, parseAddress, parseDomain, type Domain } from '../directory/domain.js';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { importCertificates, importOpenPgp } from '../directory/keys.js';
import { readOpenPgpKey } from '../directory/openpgp.js';
import type { DomainRecord } from '../directory/record.js';
import { revokedBy, verifySigned, type VerifiedKeys, type VerifiedRecord } from '../directory/signed.js';
import { TYPE } from '../directory/dnswire.js';
import { wkdHash } from '../directory/wkd.js';
import { MemoryDiscoveryCache, type CacheEntry, type DiscoveryCache } from './cache.js';
import type { Discovered, SourceName } from './discovered.js';
import { AnswerLog, lookupRecords, stubResolver, type DnssecMode, type Resolver } from './dns.js';
import { pinMatches, type Pin } from './pin.js';
import { acceptedPin, checkPin, MAX_REVOKED, offers, pinLifecycle, pinViolation, type Candidate } from './pincheck.js';
import { fingerprints, keysText, type PinEntry, type PinStore, type PinViolation } from './pins.js';
import { dnsTrust, isAuthenticated, keysWithin, pinTrust, type DnsEvidence, type KeyTrust } from './trust.js';
import { readPins, readWellKnown, type DomainSources } from './proof.js';
import { getBytes, getJson } from './web.js';

/** The answer's type, for the gateway and the CLI: defined in federation/discovered.ts. */
export type { Discovered } from './discovered.js';

/**
 * The discovery resolver (docs/architecture.md "Discovery"): what a gateway does to find a peer domain's
 * keys. Order: local overrides and imported keys → cache → the domain's own `_mailmesh` TXT
 * with its OPENPGPKEY/SMIMEA, well-known record and WKD → configured directories (DNS, then
 * HTTPS) → none. Every answer carries its provenance; key changes are checked against pins.
 */

export interface DirectoryRef {
  /** Base URL of the directory's HTTP face. */
  url: string;
  /** Its federation zone, for DNS lookups of `<domain>.<zone>`; without it, HTTPS only. */
  zone?: string;
  /** Ask these servers (host:port) for the zone instead of the configured resolvers (e.g. the directory's own DNS). */
  nameservers?: string[];
}

export interface DiscoveryOptions {
  sources: DomainSources;
  directories: DirectoryRef[];
  pins: PinStore;
  /** Local overrides: this node's own and imported records (unpublished included). */
  local?: (domain: Domain) => Promise<DomainRecord | undefined>;
  cacheTtlMs?: number;
  negativeTtlMs?: number;
  /** How long past its TTL an answer is still served while every source fails. */
  staleMaxMs?: number;
  /** Where answers are cached (default: in memory, per process); its failures count as misses. */
  cache?: DiscoveryCache;
  logger?: Pick<Logger, 'warn' | 'info'>;
  /** For the resolvers made here (a directory's `nameservers`): whose AD bit counts (default off). */
  dnssec?: DnssecMode;
  /** How long keys a pin moved away from stay in its `previous` list (keys.retainDays; default 30 days). */
  retainMs?: number;
}

export interface DiscoverOptions {
  /**
   * `mailmesh pins accept`: a fingerprint (OpenPGP, S/MIME leaf, or S/MIME CA key pin) the
   * administrator accepts although the pin refused it. The cache is skipped, only a candidate
   * offering it is taken (never a revoked one), and nothing else is: NOT_FOUND when no source
   * offers it now.
   */
  accept?: string;
}

const KEY_OWNER = (d: Domain) => domainKeyAddress(d);
/** Keys from DNS carry the capabilities of the `_mailmesh` TXT pin that names them (federation/pin.ts). */
const capsOf = (pins: Pin[], keys: VerifiedKeys) => pins.find((p) => pinMatches(p, keys))?.caps;
/** The first steps ask the domain itself (DNS, well-known record, WKD); the rest ask directories. */
const OWN_STEPS = 3;
const DAY_MS = 86_400_000;

export class Discovery {
  readonly #o: DiscoveryOptions;
  readonly #cache: DiscoveryCache;

  constructor(o: DiscoveryOptions) {
    this.#o = o;
    this.#cache = o.cache ?? new MemoryDiscoveryCache();
  }

  get #now(): Date {
    return this.#o.sources.clock();
  }

  /** Forgets cached answers (all, or one domain's). */
  async forget(domain?: string): Promise<void> {
    if (domain === undefined) await this.#cache.clear();
    else await this.#cache.delete(parseDomain(domain));
  }

  /** Discovers a domain, or the domain of an address. */
  async discover(input: string, opts: DiscoverOptions = {}): Promise<Discovered> {
    const domain = input.includes('@') ? parseAddress(input).domain : parseDomain(input);
    const now = this.#now;
    const at = now.toISOString();

    const local = await this.#o.local?.(domain);
    if (local && (local.provenance.source === 'local' || local.provenance.source === 'imported') && local.status !== 'deleted') {
      const source = local.provenance.source;
      return { domain, keys: local.keys, gateways: local.gateways, formats: local.formats, capabilities: local.capabilities, provenance: { source, verified: local.provenance.verified, origin: local.provenance.origin, at: local.provenance.at, trust: source }, cache: 'miss' };
    }

    const accept = opts.accept?.toLowerCase();
    const cached = accept ? undefined : await this.#cached(domain);
    if (cached && cached.expires > now.getTime()) return { ...cached.result, cache: 'hit' };

    const pin = await this.#o.pins.get(domain);
    const failures: string[] = [];
    let definite = false;
    let violation: PinViolation | undefined;
    /** A lagging source served a key the pin moved away from. */
    let lagging: Candidate | undefined;
    // Revoked keys refuse a candidate from any source: a revocation signature proves itself.
    const revoked = new Set<string>(pin?.revoked ?? []);
    const known = [pin?.keys.openpgp?.armored, pin?.nextKeys?.openpgp?.armored ?? pin?.nextArmored, ...(pin?.previous ?? []).map((p) => p.keys.openpgp?.armored)].filter((a): a is string => !!a);

    const consider = async (c: Candidate, later: (() => Promise<Candidate[]>)[]): Promise<Discovered | undefined> => {
      const revocations = c.verified?.payload.revocations;
      if (revocations?.length) for (const f of await revokedBy(revocations, known, now)) revoked.add(f);
      const dead = fingerprints(c.keys).find((f) => revoked.has(f));
      const offersAccepted = accept !== undefined && offers(c.keys, accept);
      if (dead) {
        if (offersAccepted) throw new MailmeshError('KEY_REVOKED', `${dead}: revoked by ${domain}, never accepted`);
        const key = dead === c.keys.openpgp?.fingerprint ? 'openpgp' : 'smime';
        const pinned = key === 'openpgp' ? (pin?.keys.openpgp?.fingerprint ?? '-') : `S/MIME ${pin?.keys.smime?.fingerprint ?? '-'}`;
        violation ??= pinViolation(domain, c, { key, pinned, offered: key === 'openpgp' ? dead : `S/MIME ${dead}`, revoked: true }, this.#now);
        return undefined;
      }
      if (accept !== undefined && !offersAccepted) return undefined;
      const check = await checkPin(pin, c, this.#now, accept);
      if (check.decision === 'accept') {
        const { twin, failed } = isAuthenticated(c.trust) || accept ? { twin: c, failed: false } : await this.#authenticatedTwin(pin, c, later);
        const best = twin ?? c;
        // A key that is not authenticated by itself is `pinned` when it is the pin of an authenticated one.
        const trust = isAuthenticated(best.trust) ? best.trust : pin && keysWithin(pin.keys, best.keys) ? pinTrust(pin) : 'unauthenticated';
        const pending = trust === 'unauthenticated' && failed ? { trustPending: true } : {};
        const entry = await this.#remember(domain, pin, best, trust, revoked);
        return { domain, keys: best.keys, gateways: best.gateways, formats: best.formats, capabilities: best.capabilities, provenance: { source: best.source, verified: best.how, origin: best.origin, at, trust, ...pending }, cache: 'miss', ...pinLifecycle(entry, this.#now) };
      }
      if (check.decision === 'previous') lagging ??= c;
      if (check.decision === 'violation' && pin) violation ??= pinViolation(domain, c, check.change, this.#now);
      return undefined;
    };

    // "none" needs an answer from a directory, or, with none configured, from every source of
    // the domain itself: a source that is down must never turn into "no key" (a downgrade).
    const steps = this.#steps(domain, pin, new AnswerLog());
    for (const [i, step] of steps.entries()) {
      let candidates: Candidate[];
      try {
        candidates = await step();
        if (i >= OWN_STEPS || (steps.length === OWN_STEPS && i === OWN_STEPS - 1 && failures.length === 0)) definite = true;
      } catch (e) {
        if (!isMailmeshError(e)) throw e;
        if (e.code === 'KEY_REVOKED') {
          definite = true;
          const f = e.detail?.split(/\s/)[0];
          if (f) revoked.add(f);
        }
        failures.push(`${e.code}: ${e.message}`);
        continue;
      }
      for (const c of candidates) {
        const r = await consider(c, steps.slice(Math.max(i + 1, OWN_STEPS)));
        if (r) return this.#store(r, violation);
      }
    }

    if (accept !== undefined) throw new MailmeshError('NOT_FOUND', `${domain}: no source offers ${opts.accept} now${failures.length ? ` (${failures.join('; ')})` : ''}`);
    // A revocation by the pinned key itself removes it everywhere (docs/architecture.md "Revocation"):
    // the pin keeps no keys, only the revoked fingerprints, so no source can bring them back.
    if (pin?.keys.openpgp && revoked.has(pin.keys.openpgp.fingerprint)) {
      const dropped = fingerprints(pin.keys);
      const entry: PinEntry = { at, violations: violation ? [...pin.violations, violation].slice(-20) : pin.violations, keys: {}, revoked: [...new Set([...revoked, ...dropped])].slice(-MAX_REVOKED), droppedAt: at, ...(pin.trust ? { trust: pin.trust } : {}) };
      await this.#o.pins.put(domain, entry);
      this.#o.logger?.warn({ domain, fingerprint: pin.keys.openpgp.fingerprint }, 'pinned key revoked: dropped');
      return this.#store(this.#none(domain, entry, `key ${pin.keys.openpgp.fingerprint} revoked`, violation));
    }
    const remembered = revoked.size ? { revoked: [...revoked].slice(-MAX_REVOKED) } : {};
    if (violation && pin) {
      // Held: the old key stays in use (none when a revocation left none), the violation is reported and kept for doctor (the last 20).
      this.#o.logger?.warn({ ...violation }, 'pin violation: key change refused');
      await this.#o.pins.put(domain, { ...pin, ...remembered, violations: [...pin.violations, violation].slice(-20) });
      if (!pin.keys.openpgp && !pin.keys.smime) return this.#store(this.#none(domain, pin, `refused: ${violation.source} offered ${violation.offered}`, violation));
      return this.#store({ domain, keys: pin.keys, provenance: { source: 'pinned', verified: `pinned key kept: ${violation.source} offered ${violation.offered}`, at: pin.at, trust: pinTrust(pin) }, cache: 'miss', violation, ...pinLifecycle(pin, this.#now) }, violation);
    }
    // Revocations learnt on the way are remembered, with or without a pin (no source may bring those keys back).
    if (revoked.size > (pin?.revoked?.length ?? 0)) await this.#o.pins.put(domain, { ...(pin ?? { keys: {}, at, violations: [] }), ...remembered });
    if (lagging && pin) {
      // Only keys the pin moved away from were offered (a source behind the switch): the pinned keys stay.
      return this.#store({ domain, keys: pin.keys, provenance: { source: 'pinned', verified: `pinned key kept: ${lagging.source} still serves the previous key ${keysText(lagging.keys)}`, at: pin.at, trust: pinTrust(pin) }, cache: 'miss', ...pinLifecycle(pin, this.#now) });
    }
    if (!definite) {
      const stale = cached && cached.staleUntil > now.getTime() ? cached.result : undefined;
      if (stale) return { ...stale, cache: 'stale' };
      // After a restart the cache is empty: the pin's keys stand in, within the same bound.
      const pinFresh = pin && (pin.keys.openpgp || pin.keys.smime) && Date.parse(pin.at) + (this.#o.cacheTtlMs ?? 300_000) + (this.#o.staleMaxMs ?? 86_400_000) > now.getTime();
      if (pin && pinFresh) return { domain, keys: pin.keys, provenance: { source: 'pinned', verified: 'every source failed; last accepted keys', at: pin.at, trust: pinTrust(pin), ...(pinTrust(pin) === 'pinned' ? {} : { trustPending: true }) }, cache: 'stale', ...pinLifecycle(pin, this.#now) };
      throw new MailmeshError('LOOKUP_UNAVAILABLE', `${domain}: ${failures.join('; ')}`);
    }
    return this.#store(this.#none(domain, pin, failures.join('; ') || 'no source knows the domain'));
  }

  /**
   * The answer "no key", with awaitingKeysUntil while the domain's pinned keys were dropped by
   * its revocation less than staleMaxMs ago: the domain revoked them to replace them, and a
   * source that lags behind the replacement (its TXT, a directory) must not turn into plain text.
   */
  #none(domain: Domain, pin: PinEntry | undefined, verified: string, violation?: PinViolation): Discovered {
    const now = this.#now;
    const until = pin?.droppedAt && !pin.keys.openpgp && !pin.keys.smime ? Date.parse(pin.droppedAt) + (this.#o.staleMaxMs ?? 86_400_000) : NaN;
    const awaiting = until > now.getTime() ? { awaitingKeysUntil: new Date(until).toISOString() } : {};
    return { domain, keys: {}, provenance: { source: 'none', verified, at: now.toISOString(), trust: 'unauthenticated' }, cache: 'miss', ...(violation ? { violation } : {}), ...awaiting };
  }

  /** A cache that cannot be read is a miss: discovery goes on to the sources. */
  async #cached(domain: Domain): Promise<CacheEntry | undefined> {
    try {
      return await this.#cache.get(domain);
    } catch (err) {
      this.#o.logger?.warn({ domain, err }, 'discovery cache unreadable: treated as a miss');
      return undefined;
    }
  }

  /** Caches an answer (a failed write is only logged) and returns it. */
  async #store(r: Discovered, violation?: PinViolation): Promise<Discovered> {
    const now = this.#now.getTime();
    const ttl = r.provenance.source === 'none' ? (this.#o.negativeTtlMs ?? 60_000) : (this.#o.cacheTtlMs ?? 300_000);
    const life = ttl + (this.#o.staleMaxMs ?? 86_400_000);
    // In the form every cache gives back (JSON has no `undefined`), so a hit equals the miss.
    const result = JSON.parse(JSON.stringify(violation && !r.violation ? { ...r, violation } : r)) as Discovered;
    try {
      await this.#cache.set(r.domain, { result, expires: now + ttl, staleUntil: now + life }, life);
    } catch (err) {
      this.#o.logger?.warn({ domain: r.domain, err }, 'discovery cache not written');
    }
    return result;
  }

  /** The lookups in docs/architecture.md order; each returns candidates (possibly none) or throws when its source fails. */
  #steps(domain: Domain, pin: PinEntry | undefined, log: AnswerLog): (() => Promise<Candidate[]>)[] {
    const s = { ...this.#o.sources, resolver: log.wrap(this.#o.sources.resolver) };
    let ownPins: Pin[] = [];
    const pinsOwner = `${PIN_LABEL}.${domain}`;
    const ownEvidence = (o: Partial<DnsEvidence> = {}): DnsEvidence => ({ pins: ownPins, pinsValidated: log.authenticated(pinsOwner, TYPE.TXT), ...o });
    const matchesOwn = (k: VerifiedKeys) => ownPins.length === 0 || ownPins.some((p) => pinMatches(p, k));
    const own = (k: VerifiedKeys) => (ownPins.length ? (matchesOwn(k) ? ', matches the domain\'s _mailmesh pin' : ', NOT the key the domain\'s _mailmesh pins') : '');
    const steps: (() => Promise<Candidate[]>)[] = [
      async () => {
        ownPins = (await readPins(s, domain)).pins;
        if (ownPins.length === 0) return [];
        const out: Candidate[] = [];
        const [pgpOwner, smimeOwner] = [openPgpKeyOwner(KEY_OWNER(domain)), smimeaOwner(KEY_OWNER(domain))];
        const keys = await this.#dnsKeys(pgpOwner, smimeOwner, domain, s.resolver, ownPins);
        const trust = dnsTrust(keys, ownEvidence({ openpgpValidated: log.authenticated(pgpOwner, TYPE.OPENPGPKEY), smimeValidated: log.authenticated(smimeOwner, TYPE.SMIMEA) }));
        if (keys.openpgp || keys.smime) out.push({ keys, source: 'domain-dns', how: `OPENPGPKEY/SMIMEA of the domain${own(keys)}`, ownPinOk: matchesOwn(keys), trust, capabilities: capsOf(ownPins, keys) });
        return out;
      },
      async () => {
        if (ownPins.length === 0) return [];
        const v = await readWellKnown(s, domain);
        // Served by the domain over HTTPS and self-signed: authenticated only by a validated pin naming its keys.
        return v ? [this.#fromVerified(v, 'domain-https', `signed well-known record${own(v.keys)}`, s.wellKnownBase(domain), matchesOwn(v.keys), dnsTrust(v.keys, ownEvidence()))] : [];
      },
      async () => {
        if (ownPins.length === 0) return [];
        const url = `${s.wellKnownBase(domain)}/.well-known/openpgpkey/hu/${wkdHash('domainkey')}?l=domainkey`;
        const bytes = await getBytes(url, { fetch: s.fetch, timeoutMs: s.timeoutMs });
        if (!bytes) return [];
        const openpgp = await importOpenPgp(bytes, domain, this.#now);
        return [{ keys: { openpgp }, source: 'domain-wkd', how: `WKD key${own({ openpgp })}`, origin: url, ownPinOk: matchesOwn({ openpgp }), trust: dnsTrust({ openpgp }, ownEvidence()) }];
      },
    ];
    for (const dir of this.#o.directories) {
      const base = dir.url.replace(/\/+$/, '');
      if (dir.zone) {
        steps.push(async () => {
          const owner = `${domain}.${dir.zone}`;
          const ds = dir.nameservers?.length ? { ...s, resolver: log.wrap(this.#directoryResolver(dir.nameservers)) } : s;
          const dirPins = (await readPins(ds, domain, owner)).pins;
          if (dirPins.length === 0) return [];
          const keys = await this.#dnsKeys(owner, owner, domain, ds.resolver, dirPins);
          if (!(keys.openpgp || keys.smime) || !dirPins.some((p) => pinMatches(p, keys))) return [];
          const validated = (type: number) => log.authenticated(owner, type);
          const trust = dnsTrust(keys, { pins: dirPins, pinsValidated: validated(TYPE.TXT), openpgpValidated: validated(TYPE.OPENPGPKEY), smimeValidated: validated(TYPE.SMIMEA) });
          return [{ keys, source: 'directory-dns', how: `OPENPGPKEY/SMIMEA in ${dir.zone} match its TXT pin${own(keys)}`, origin: owner, ownPinOk: matchesOwn(keys), trust, capabilities: capsOf(dirPins, keys) }];
        });
      }
      steps.push(async () => {
        const body = (await getJson(`${base}/v1/domains/${encodeURIComponent(domain)}`, { fetch: s.fetch, timeoutMs: s.timeoutMs })) as DomainRecord | undefined;
        if (!body) return [];
        if (!body.signed) throw new MailmeshError('SIGNATURE_INVALID', `${base}: the record of ${domain} is not signed`);
        const alsoTry = [pin?.keys.openpgp?.armored, pin?.nextArmored].filter((a): a is string => !!a);
        const v = await verifySigned(body.signed, this.#now, alsoTry);
        if (v.domain !== domain) throw new MailmeshError('SIGNED_RECORD_MALFORMED', `${base} answered for ${v.domain}`);
        const status = body.status === 'stale' ? ' (the directory marks it stale)' : '';
        // Signed by the domain key, from a directory the operator configured (over HTTPS), which checked the proof of control.
        return [this.#fromVerified(v, 'directory-https', `signature by ${v.keys.openpgp.fingerprint}${own(v.keys)}${status}`, base, matchesOwn(v.keys), 'signed-record')];
      });
    }
    return steps.map((step) => async () => (await step()).map((c) => ({ ...c, ownPins })));
  }

  /**
   * For an answer that is not authenticated by itself: the directory steps after it are asked
   * too, and an authenticated answer there with the same keys that the pin accepts is preferred
   * (so `mode: require` is not refused for keys a directory holds signed). `failed`: one of them
   * could not be asked.
   */
  async #authenticatedTwin(pin: PinEntry | undefined, c: Candidate, later: (() => Promise<Candidate[]>)[]): Promise<{ twin?: Candidate; failed: boolean }> {
    let failed = false;
    for (const step of later) {
      let found: Candidate[];
      try {
        found = await step();
      } catch (e) {
        if (!isMailmeshError(e)) throw e;
        failed = true;
        continue;
      }
      for (const d of found) if (isAuthenticated(d.trust) && keysWithin(d.keys, c.keys) && (await checkPin(pin, d, this.#now)).decision === 'accept') return { twin: d, failed };
    }
    return { failed };
  }

  #fromVerified(v: VerifiedRecord, source: SourceName, how: string, origin: string, ownPinOk: boolean, trust: KeyTrust): Candidate {
    return { keys: v.keys, verified: v, gateways: v.payload.gateways, formats: v.payload.formats, capabilities: v.payload.capabilities, source, how, origin, ownPinOk, trust };
  }

  /** A directory's own name servers: usually authoritative (no AD); the same DNSSEC rule as the resolvers. */
  #directoryResolver(nameservers: string[]): Resolver {
    return stubResolver(nameservers, { timeoutMs: this.#o.sources.timeoutMs, dnssec: this.#o.dnssec });
  }

  /**
   * RFC 7929 §2.1 OPENPGPKEY and RFC 8162 §2 SMIMEA (usage 3, selector 0, matching 0: the full
   * certificate) at two owner names. An RRset may hold several (during a roll the next keys stand
   * beside the current ones, docs/lifecycle.md "Roll"; DNS gives no order): the keys taken are those
   * a TXT pin names (the first pin whose keys are all there), else the first RR, which the pin check then refuses.
   */
  async #dnsKeys(pgpOwner: string, smimeOwner: string, domain: Domain, r: Resolver, pins: Pin[]): Promise<VerifiedKeys> {
    const [pgp, smime] = await Promise.all([lookupRecords(r, pgpOwner, TYPE.OPENPGPKEY), lookupRecords(r, smimeOwner, TYPE.SMIMEA)]);
    const certs = smime.filter((rr) => rr.rdata.length > 3 && rr.rdata[0] === 3 && rr.rdata[1] === 0 && rr.rdata[2] === 0).map((rr) => rr.rdata.subarray(3));
    // RFC 4880 §12.2 fingerprints of the keys; an unreadable one matches no pin.
    const pgpFprs = await Promise.all(pgp.map((rr) => readOpenPgpKey(rr.rdata).then((k) => k.getFingerprint().toUpperCase(), () => undefined)));
    const smimeFprs = certs.map((der) => createHash('sha256').update(der).digest('hex'));
    const pin = pins.find((p) => (!p.pgp || pgpFprs.includes(p.pgp)) && (!p.smime || smimeFprs.includes(p.smime)));
    const pick = (fprs: (string | undefined)[], named: string | undefined, kind: 'pgp' | 'smime') => {
      const want = named ?? fprs.find((f) => f !== undefined && pins.some((p) => p[kind] === f));
      return want === undefined ? 0 : Math.max(0, fprs.indexOf(want));
    };
    const keys: VerifiedKeys = {};
    if (pgp.length) keys.openpgp = await importOpenPgp(pgp[pick(pgpFprs, pin?.pgp, 'pgp')]!.rdata, domain, this.#now);
    if (certs.length) keys.smime = await importCertificates(certs[pick(smimeFprs, pin?.smime, 'smime')]!, domain, this.#now);
    return keys;
  }

  /** Pins the accepted keys (federation/pincheck.ts acceptedPin). */
  async #remember(domain: Domain, pin: PinEntry | undefined, c: Candidate, trust: KeyTrust, revoked: Set<string>): Promise<PinEntry> {
    const entry = acceptedPin(pin, c, trust, revoked, this.#now, this.#o.retainMs ?? 30 * DAY_MS);
    await this.#o.pins.put(domain, entry);
    return entry;
  }
}
