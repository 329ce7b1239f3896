import { randomBytes, X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { Directory } from '../../directory/directory.js';
import type { TunnelFormat } from '../../directory/record.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { stubResolver } from '../../federation/dns.js';
import { Discovery } from '../../federation/discovery.js';
import { KeyLifecycle, keyExpiries, type LifecycleEvent } from '../../federation/lifecycle.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { MailPolicy } from '../../gateway/gateway.js';
import { captureSink, type CaptureSink } from '../../cli/demo/loopback.js';
import { DEFAULT_POLICY } from '../helpers.js';
import { createRouter } from '../../gateway/smtp/route.js';
import { createGateway } from '../../gateway/smtp/smtp.js';
import { startDns } from '../directory/dns/helpers.js';
import { startHttp } from '../directory/http/helpers.js';
import { testClock } from '../federation/helpers.js';
import { headerOf, makeMessage, sendAll, withoutTrace, type Sent } from './helpers.js';

// Real processes and key generation: slow on a loaded 2-core machine; a hang still ends here.
t.setTimeout(600_000);

// Issue #10 "How it is shown": the lifecycle with an injected clock across the whole validity
// (keys.validDays 730, the domain CA twice that, S/MIME leaves keys.leafDays 365), unattended: two member domains in this process,
// each its directory (memory store, the test's clock) with its HTTP and DNS faces, its gateway
// on a real SMTP socket and its internal mail server; KeyLifecycle.tick() with keys.autoRoll does
// the key work: it renews each leaf under the same CA before it ends, and rolls the keys. The clock walks a week per step past the CA's lifetime, and at every step mail
// flows both ways in both tunnel formats.

const DAY = 86_400_000;
const STEP_DAYS = 7;
const WALK_DAYS = 1500;
const KEYS = { openpgp: 'curve25519' as const, validDays: 730, leafDays: 365, overlapDays: 7, retainDays: 30 };

const clock = testClock(new Date('2027-01-04T09:00:00Z'));

interface ClockMember {
  domain: string;
  directory: Directory;
  http: string;
  dnsPort: number;
  settled(): Promise<void>;
  sink: CaptureSink;
  smtpPort: number;
  lifecycle: KeyLifecycle;
  formats: TunnelFormat[];
}

async function clockMember(t: Test, domain: string): Promise<ClockMember> {
  const directory = await Directory.open(new MemoryStore(), randomBytes(32), { keys: KEYS, clock: clock.now });
  await directory.addDomain(domain, { formats: ['pgp-mime', 'smime'] });
  const { base: http } = await startHttp(t, directory);
  // Its own DNS: the `_mailmesh` TXT of its domain follows the record (and names the next keys during a roll).
  const { server: dns, port: dnsPort } = await startDns(t, directory, {
    zone: `dir.${domain}`, ttl: 60, hostmaster: `hostmaster@${domain}`, nameservers: [`ns1.dir.${domain}`], authoritativeFor: [domain], directoryUrl: http,
  });
  const sink = await captureSink();
  t.teardown(() => sink.close());
  const sources = { resolver: stubResolver([`127.0.0.1:${dnsPort}`], { timeoutMs: 2000 }), wellKnownBase: () => 'http://127.0.0.1:1', clock: clock.now, timeoutMs: 2000 };
  const lifecycle = new KeyLifecycle({ directory, keys: { overlapDays: KEYS.overlapDays, autoRoll: true, renewBeforeDays: 30 }, directories: [], sources });
  return { domain, directory, http, dnsPort, settled: () => dns.settled(), sink, smtpPort: 0, lifecycle, formats: [] };
}

/** The gateway of `self`: discovers `peer` through the peer's directory (REST + DNS) and the peer's own DNS, relays outbound mail to the peer's gateway. */
async function gateway(t: Test, self: ClockMember, peer: ClockMember, format: () => TunnelFormat): Promise<void> {
  const discovery = new Discovery({
    sources: { resolver: stubResolver([`127.0.0.1:${peer.dnsPort}`], { timeoutMs: 2000 }), wellKnownBase: () => 'http://127.0.0.1:1', clock: clock.now, timeoutMs: 2000 },
    directories: [{ url: peer.http, zone: `dir.${peer.domain}`, nameservers: [`127.0.0.1:${peer.dnsPort}`] }],
    pins: new MemoryPinStore(),
    local: (d) => self.directory.findRecord(d, { unpublished: true }),
    cacheTtlMs: 3_600_000,
    retainMs: KEYS.retainDays * DAY,
  });
  // The format of the moment: the per-domain policy is read per message.
  const policy = { ...DEFAULT_POLICY, domains: {} as Record<string, { format?: TunnelFormat }> };
  Object.defineProperty(policy.domains, peer.domain, { enumerable: true, get: () => ({ format: format() }) });
  const mail = await MailPolicy.create({ directory: self.directory, discovery, policy, authservId: `mx.${self.domain}`, clock: clock.now });
  t.teardown(() => mail.close());
  // Inbound to its internal mail server, outbound to the peer's gateway (its port is known once it listens).
  const hops = () => ({ internal: { host: '127.0.0.1', port: self.sink.port, tls: 'none' as const }, smarthost: { host: '127.0.0.1', port: peer.smtpPort, tls: 'none' as const } });
  const gw = await createGateway({ ...mail.gatewayHooks(), listen: { host: '127.0.0.1', port: 0 }, name: `mx.${self.domain}`, isInternal: ['127.0.0.0/8'], route: (d, dir) => createRouter(hops())(d, dir), logger: pino({ level: 'silent' }) });
  t.teardown(() => gw.close());
  self.smtpPort = (await gw.listen()).port;
}

const alpha = await clockMember(t, 'alpha.test');
const beta = await clockMember(t, 'beta.test');
let step = 0;
const formatNow = (): TunnelFormat => (step % 2 === 0 ? 'pgp-mime' : 'smime');
await gateway(t, alpha, beta, formatNow);
await gateway(t, beta, alpha, formatNow);

const fingerprints = async (m: ClockMember) => {
  const r = await m.directory.getRecord(m.domain);
  return { openpgp: r.keys.openpgp!.fingerprint, smime: r.keys.smime!.fingerprint, ca: r.keys.smime!.chain.at(-1)!, leafKey: leafKey(r.keys.smime!.chain[0]!), expiries: keyExpiries(r.keys) };
};

/** The public key of a leaf certificate (SubjectPublicKeyInfo, RFC 5280 §4.1.2.7), base64. */
function leafKey(pem: string): string {
  return new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

t.test(`${WALK_DAYS} days, a step of ${STEP_DAYS} days: leaves renew and keys (and the domain CA) roll by themselves, and mail sent at every step arrives`, async (t) => {
  const first = { alpha: await fingerprints(alpha), beta: await fingerprints(beta) };
  const events: (LifecycleEvent & { day: number })[] = [];
  const sent: Sent[] = [];
  const renewals: { domain: string; day: number; before: Awaited<ReturnType<typeof fingerprints>>; after: Awaited<ReturnType<typeof fingerprints>> }[] = [];
  const start = clock.now().getTime();
  let n = 0;
  for (; clock.now().getTime() - start <= WALK_DAYS * DAY; step++, clock.advance(STEP_DAYS * DAY)) {
    const day = Math.round((clock.now().getTime() - start) / DAY);
    for (const m of [alpha, beta]) {
      const before = await fingerprints(m);
      const ticked = await m.lifecycle.tick();
      for (const e of ticked) events.push({ ...e, day });
      await m.settled();
      if (ticked.some((e) => e.action === 'renewed')) renewals.push({ domain: m.domain, day, before, after: await fingerprints(m) });
    }
    const batch = [makeMessage(n++, 'a@alpha.test', 'b@beta.test', `day ${day}`), makeMessage(n++, 'b@beta.test', 'a@alpha.test', `day ${day}`)];
    await sendAll(batch, (m) => (m.from.endsWith('@alpha.test') ? alpha.smtpPort : beta.smtpPort), { concurrency: 2, maxTries: 1 });
    sent.push(...batch);
    const failed = batch.filter((m) => m.replies.at(-1) !== '250');
    if (failed.length) {
      t.fail(`day ${day} (${formatNow()}): ${failed.map((m) => `${m.from} → ${m.to}: ${m.replies.join(' | ')}`).join('; ')}`);
      break;
    }
  }
  t.comment(events.filter((e) => e.action !== 'posted').map((e) => `day ${e.day} ${e.domain} ${e.action} ${e.detail ?? ''}`).join('\n'));
  t.same(events.filter((e) => e.action === 'failed' || e.action === 'waiting'), [], 'no lifecycle step failed or waited');
  for (const m of [alpha, beta]) {
    const mine = events.filter((e) => e.domain === m.domain);
    // keys.leafDays < keys.validDays: the leaf ends before the OpenPGP key, and serve renews it.
    const renewed = renewals.filter((r) => r.domain === m.domain);
    t.ok(renewed.length >= 2, `${m.domain}: the S/MIME leaf renewed by itself on days ${renewed.map((r) => r.day).join(', ')}`);
    for (const r of renewed) {
      t.not(r.after.smime, r.before.smime, `${m.domain} day ${r.day}: a new leaf certificate`);
      t.equal(r.after.ca, r.before.ca, `${m.domain} day ${r.day}: under the same domain CA`);
      t.equal(r.after.leafKey, r.before.leafKey, `${m.domain} day ${r.day}: with the same key pair`);
      t.equal(r.after.openpgp, r.before.openpgp, `${m.domain} day ${r.day}: the OpenPGP key stays`);
      const end = Math.min(start + (r.day + KEYS.leafDays) * DAY, r.after.expiries['smime-ca']!.getTime());
      t.ok(r.after.expiries.smime!.getTime() > r.before.expiries.smime!.getTime(), `${m.domain} day ${r.day}: the leaf ends later`);
      t.equal(r.after.expiries.smime!.getTime(), end, `${m.domain} day ${r.day}: keys.leafDays from now, not beyond the CA`);
    }
    const during = mine.filter((e) => e.action === 'renewed' && mine.some((a) => a.action === 'announced' && a.day < e.day && !mine.some((f) => f.action === 'finished' && f.day >= a.day && f.day < e.day)));
    t.same(during, [], `${m.domain}: no leaf renewed while a roll is announced`);
    t.ok(mine.filter((e) => e.action === 'announced').length >= 2, `${m.domain}: a roll announced in each validity period`);
    t.equal(mine.filter((e) => e.action === 'finished').length, mine.filter((e) => e.action === 'announced').length, `${m.domain}: every announced roll finished by itself`);
    const now = await fingerprints(m);
    const was = first[m.domain === 'alpha.test' ? 'alpha' : 'beta'];
    t.not(now.openpgp, was.openpgp, `${m.domain}: the OpenPGP key in use is not the first one`);
    t.not(now.smime, was.smime, `${m.domain}: the S/MIME certificate in use is not the first one`);
    t.not(now.ca, was.ca, `${m.domain}: the domain CA was rolled too`);
    for (const [kind, until] of Object.entries(now.expiries)) t.ok(until.getTime() > clock.now().getTime(), `${m.domain}: ${kind} not expired (until ${until.toISOString()})`);
  }
  t.ok(step * STEP_DAYS > 2 * KEYS.validDays, `walked past the domain CA's lifetime (${step} steps)`);

  // Every message arrived at its recipient, decrypted, as sent, with mailmesh=pass.
  const got = new Map<string, Buffer>();
  for (const s of [alpha.sink, beta.sink]) for (const m of s.messages) got.set(/^Message-ID:\s*(\S+)/im.exec(headerOf(m.data))?.[1] ?? '', m.data);
  const bad = sent.filter((m) => {
    const d = got.get(m.id);
    return !d || !/mailmesh=pass/.test(headerOf(d)) || /^Content-Type:\s*(multipart\/encrypted|application\/(x-)?pkcs7-mime)/im.test(headerOf(d)) || !withoutTrace(d).equals(withoutTrace(m.data));
  });
  t.same(bad.map((m) => m.id), [], `all ${sent.length} messages arrived decrypted with mailmesh=pass`);
  t.equal(alpha.sink.messages.length + beta.sink.messages.length, sent.length, 'none twice');
});
