import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import type { Test } from 'tap';
import { openPgpKeyData, openPgpKeyOwner, pinText, smimeaData, smimeaOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { smimeaRdata } from '../../directory/dnswire.js';
import type { DomainRecord } from '../../directory/record.js';
import { Discovery } from '../../federation/discovery.js';
import { stubResolver, type DnssecMode } from '../../federation/dns.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { freePort, knotServerConf, memoryDirectory, rejectsCode, tempDir } from '../helpers.js';
import { kdig } from '../directory/dns/helpers.js';

/**
 * DNSSEC end to end: Knot signs alpha.test (and gamma.test) automatically and serves beta.test
 * unsigned; unbound, a validating resolver on a loopback port, has alpha.test's key as trust
 * anchor (gamma.test's anchor is deliberately wrong) and reaches the zones through stub-zones.
 * Discovery pointed at unbound with `dnssec: trust-ad-from-loopback` gets trust `dnssec` for
 * alpha.test; every other path to the same records gives `unauthenticated`, a bogus zone fails.
 */

const missing = ['knotd', 'unbound'].filter((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0);
if (missing.length) {
  t.plan(0, `${missing.join(' and ')} not installed (Debian packages: knot, unbound)`);
  process.exit(0);
}

/** A daemon in the foreground, stopped (and waited for) when the test ends; its stderr kept. */
function daemon(t: Test, cmd: string, args: string[]): { log: () => string; running: () => boolean } {
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  t.teardown(async () => {
    if (p.exitCode === null) p.kill('SIGTERM');
    await exited;
  });
  return { log: () => log, running: () => p.exitCode === null };
}

/** RFC 3597 §5 generic presentation form, so the zone file needs no type-specific syntax. */
const generic = (type: number, rdata: Buffer) => `TYPE${type} \\# ${rdata.length} ${rdata.toString('hex')}`;

async function zoneText(r: DomainRecord): Promise<string> {
  const d = r.domain;
  const addr = domainKeyAddress(parseDomain(d));
  return [
    `$ORIGIN ${d}.`,
    '$TTL 60',
    `@ SOA ns1 hostmaster 1 3600 600 86400 60`,
    '@ NS ns1',
    'ns1 A 127.0.0.1',
    `_mailmesh TXT "${pinText(r, 'http://127.0.0.1:1')}"`,
    `${openPgpKeyOwner(addr)}. ${generic(61, await openPgpKeyData(r.keys.openpgp!.armored))}`,
    `${smimeaOwner(addr)}. ${generic(53, smimeaRdata(smimeaData(r.keys.smime!.chain[0]!)))}`,
    '',
  ].join('\n');
}

/** Polls `check` (bounded) until it holds or the daemon died. */
async function until(d: { running: () => boolean }, check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100 && d.running(); i++) {
    if (await check().catch(() => false)) return true;
    await delay(100);
  }
  return false;
}

const directory = await memoryDirectory();
const records = { alpha: await directory.addDomain('alpha.test'), beta: await directory.addDomain('beta.test'), gamma: await directory.addDomain('gamma.test') };

t.test('a DNSSEC-validated answer from a loopback resolver gives trust dnssec; every other path does not', async (t) => {
  const dir = tempDir(t, 'mailmesh-dnssec-');
  for (const sub of ['run', 'db', 'zones']) mkdirSync(join(dir, sub));
  for (const r of Object.values(records)) writeFileSync(join(dir, 'zones', `${r.domain}.zone`), await zoneText(r));

  const knotPort = await freePort();
  writeFileSync(join(dir, 'knot.conf'), `${knotServerConf(dir, knotPort)}template:
  - id: default
    storage: "${dir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: alpha.test
    dnssec-signing: on
  - domain: gamma.test
    dnssec-signing: on
  - domain: beta.test
`);
  const knot = daemon(t, 'knotd', ['-c', join(dir, 'knot.conf')]);
  let ksk = '';
  const signed = await until(knot, async () => {
    const dnskey = await kdig(knotPort, ['alpha.test', 'DNSKEY']);
    ksk = dnskey.answers.map((l) => l.split(/\s+/).slice(4).join(' ')).find((rd) => rd.startsWith('257 ')) ?? '';
    const gamma = await kdig(knotPort, ['gamma.test', 'DNSKEY']);
    return !!ksk && gamma.answers.length > 0;
  });
  t.ok(signed, `Knot signs alpha.test and gamma.test (log: ${knot.log().split('\n').filter((l) => /error|warning/i.test(l)).join(' | ')})`);
  if (!signed) return;

  const unboundPort = await freePort();
  writeFileSync(join(dir, 'unbound.conf'), `server:
    interface: 127.0.0.1@${unboundPort}
    port: ${unboundPort}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "${dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    outgoing-range: 32
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    local-zone: "test." nodefault
    trust-anchor: "alpha.test. DNSKEY ${ksk}"
    trust-anchor: "gamma.test. DNSKEY ${ksk}"
${['alpha.test', 'beta.test', 'gamma.test'].map((z) => `stub-zone:\n    name: "${z}."\n    stub-addr: 127.0.0.1@${knotPort}\n`).join('')}`);
  const unbound = daemon(t, 'unbound', ['-d', '-c', join(dir, 'unbound.conf')]);
  const validating = await until(unbound, async () => (await kdig(unboundPort, ['_mailmesh.alpha.test', 'TXT', '+dnssec'])).flags.includes('ad'));
  t.ok(validating, `unbound validates alpha.test (log: ${unbound.log().split('\n').slice(-5).join(' | ')})`);
  if (!validating) return;

  const discovery = (port: number, dnssec: DnssecMode) =>
    new Discovery({
      sources: { resolver: stubResolver([`127.0.0.1:${port}`], { timeoutMs: 3000, dnssec }), wellKnownBase: () => 'http://127.0.0.1:1', clock: () => new Date(), timeoutMs: 3000 },
      directories: [],
      pins: new MemoryPinStore(),
    });

  const validated = await discovery(unboundPort, 'trust-ad-from-loopback').discover('alpha.test');
  t.equal(validated.provenance.source, 'domain-dns');
  t.equal(validated.keys.openpgp?.fingerprint, records.alpha.keys.openpgp!.fingerprint, 'alpha\'s OpenPGP key');
  t.equal(validated.keys.smime?.fingerprint, records.alpha.keys.smime!.fingerprint, 'and its certificate (SMIMEA)');
  t.equal(validated.provenance.trust, 'dnssec', 'validated by unbound on loopback: dnssec');

  const off = await discovery(unboundPort, 'off').discover('alpha.test');
  t.equal(off.keys.openpgp?.fingerprint, records.alpha.keys.openpgp!.fingerprint);
  t.equal(off.provenance.trust, 'unauthenticated', 'the same answer with federation.dnssec off: unauthenticated');

  const direct = await discovery(knotPort, 'trust-ad-from-loopback').discover('alpha.test');
  t.equal(direct.keys.openpgp?.fingerprint, records.alpha.keys.openpgp!.fingerprint);
  t.equal(direct.provenance.trust, 'unauthenticated', 'the same records from the authoritative server (it validates nothing, no AD): unauthenticated');

  const unsigned = await discovery(unboundPort, 'trust-ad-from-loopback').discover('beta.test');
  t.equal(unsigned.keys.openpgp?.fingerprint, records.beta.keys.openpgp!.fingerprint);
  t.equal(unsigned.provenance.trust, 'unauthenticated', 'an unsigned zone through the validating resolver: unauthenticated');

  // gamma.test's signatures do not chain to its (wrong) anchor: unbound answers SERVFAIL. That is
  // a failed lookup (the gateway answers 451), never "no key" and never an unvalidated key.
  await rejectsCode(t, discovery(unboundPort, 'trust-ad-from-loopback').discover('gamma.test'), 'LOOKUP_UNAVAILABLE', 'a bogus zone: the lookup fails');
});
