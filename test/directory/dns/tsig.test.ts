import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig, maskedConfig } from '../../../cli/config.js';
import { createDnsServer } from '../../../directory/dns/dns.js';
import { ResponseRateLimiter } from '../../../directory/dns/rrl.js';
import { rejectsCode, tempDir, throwsCode } from '../../helpers.js';
import { kdig, memoryDirectory, startDns, ZONE, zoneOptions } from './helpers.js';

// Zone transfers: an address ACL (dns.transfer.allow) and TSIG (RFC 8945) for secondaries, tested
// with kdig as the client (it checks the TSIG of every message it gets).

const directory = await memoryDirectory();
await directory.addDomain('example.org');
const secret = randomBytes(32).toString('base64');
const tsig = [{ name: 'xfr.key', algorithm: 'hmac-sha256' as const, secret }];

const messages = (out: string) => Number(/\((\d+) messages?/.exec(out)?.[1] ?? 0);
const tsigLines = (out: string) => out.split('\n').filter((l) => /\bANY\s+TSIG\s+hmac-sha\d+\./.test(l));

t.test('a transfer from an address not in dns.transfer.allow, unsigned, is REFUSED (RFC 5936 §2.2.1)', async (t) => {
  const { port, server } = await startDns(t, directory, { transfer: { allow: ['192.0.2.0/24'], tsig } });
  const r = await kdig(port, ['AXFR', ZONE]);
  t.match(r.err, /replied with error 'REFUSED'/);
  t.same(r.answers, [], 'nothing of the zone');
  t.match((await kdig(port, ['IXFR=0', ZONE, '+notcp'])).err, /REFUSED/, 'IXFR too');
  t.match(await server.metrics.render(), /mailmesh_dns_transfers_total\{result="refused"\} 2/, 'counted');
  t.equal((await kdig(port, [ZONE, 'SOA'])).status, 'NOERROR', 'ordinary queries are answered');
  const loopback = await startDns(t, directory);
  t.equal(messages((await kdig(loopback.port, ['AXFR', ZONE])).out), 1, 'the default allows loopback');
});

t.test('TSIG: a signed AXFR is answered, every message signed; kdig verifies them', async (t) => {
  const { port, server } = await startDns(t, directory, { axfrMessageSize: 1024, transfer: { allow: [], tsig } });
  const r = await kdig(port, ['AXFR', ZONE, '-y', `hmac-sha256:xfr.key:${secret}`]);
  t.notMatch(r.err, /WARNING|ERROR/, `kdig accepts every signature (${r.err.trim()})`);
  t.ok(messages(r.out) > 1, `a transfer of ${messages(r.out)} messages`);
  t.equal(tsigLines(r.out).length, messages(r.out), 'each message carries a TSIG record (RFC 8945 §5.3.1)');
  t.ok(tsigLines(r.out).every((l) => /\bNOERROR\b/.test(l)));
  t.match(await server.metrics.render(), /mailmesh_dns_transfers_total\{result="tsig"\} 1/);
  // kdig -k: the key from a file; HMAC-SHA512.
  const sha512 = randomBytes(64).toString('base64');
  const other = await startDns(t, directory, { transfer: { allow: [], tsig: [...tsig, { name: 'second.key', algorithm: 'hmac-sha512', secret: sha512 }] } });
  const file = join(tempDir(t), 'key');
  writeFileSync(file, `hmac-sha512:second.key:${sha512}\n`);
  const k = await kdig(other.port, ['AXFR', ZONE, '-k', file]);
  t.notMatch(k.err, /WARNING|ERROR/);
  t.equal(tsigLines(k.out).length, messages(k.out), 'HMAC-SHA512 as well');
  // A signed ordinary query gets a signed answer (RFC 8945 §5.3).
  const soa = await kdig(port, [ZONE, 'SOA', '-y', `hmac-sha256:xfr.key:${secret}`]);
  t.equal(soa.status, 'NOERROR');
  t.match(soa.out, /TSIG PSEUDOSECTION/);
  t.notMatch(soa.err, /WARNING/);
});

t.test('TSIG errors: BADSIG, BADKEY, BADTIME (RFC 8945 §5.2), never a transfer', async (t) => {
  const { port } = await startDns(t, directory, { transfer: { allow: [], tsig } });
  const wrong = await kdig(port, ['AXFR', ZONE, '-y', `hmac-sha256:xfr.key:${randomBytes(32).toString('base64')}`]);
  t.match(wrong.err, /replied with error 'BADSIG'/, 'a wrong secret: BADSIG');
  t.same(wrong.answers, []);
  const unknown = await kdig(port, ['AXFR', ZONE, '-y', `hmac-sha256:other.key:${secret}`]);
  t.match(unknown.err, /replied with error 'BADKEY'/, 'an unknown key: BADKEY');
  const algorithm = await kdig(port, ['AXFR', ZONE, '-y', `hmac-sha512:xfr.key:${secret}`]);
  t.match(algorithm.err, /replied with error 'BADKEY'/, 'the right name with another algorithm: BADKEY');
  // Our clock an hour ahead of kdig's: outside the 300 s fudge.
  const late = await startDns(t, directory, { clock: () => new Date(Date.now() + 3_600_000), transfer: { allow: [], tsig } });
  const badtime = await kdig(late.port, ['AXFR', ZONE, '-y', `hmac-sha256:xfr.key:${secret}`]);
  t.match(badtime.err, /replied with error 'BADTIME'/, 'a request signed an hour ago: BADTIME');
  t.same(badtime.answers, []);
  const udp = await kdig(late.port, [ZONE, 'SOA', '-y', `hmac-sha256:xfr.key:${secret}`]);
  t.equal(udp.status, 'BADTIME');
  t.match(udp.out, /TSIG\s+hmac-sha256\. \d+ 300 32 \S+ \d+ BADTIME 6 \d+/, 'BADTIME is signed and carries our time (Other Data, 6 octets)');
});

t.test('transfer settings are checked at start (CONFIG_INVALID)', async (t) => {
  const make = (transfer: object) => createDnsServer({ directory, ...zoneOptions(), transfer } as Parameters<typeof createDnsServer>[0]);
  await rejectsCode(t, make({ allow: ['10.0.0.0/33'] }), 'CONFIG_INVALID', 'a bad CIDR block');
  await rejectsCode(t, make({ allow: ['example.org'] }), 'CONFIG_INVALID', 'a name is no address');
  await rejectsCode(t, make({ tsig: [{ name: 'k', algorithm: 'hmac-md5', secret }] }), 'CONFIG_INVALID', 'HMAC-MD5 is not offered');
  await rejectsCode(t, make({ tsig: [{ name: 'k', algorithm: 'hmac-sha256', secret: randomBytes(16).toString('base64') }] }), 'CONFIG_INVALID', 'a key shorter than the hash');
  await rejectsCode(t, make({ tsig: [{ name: 'k', algorithm: 'hmac-sha256', secret: 'not base64!' + secret }] }), 'CONFIG_INVALID', 'a secret that is not base64');
});

t.test('dns.transfer.tsig from the environment (JSON); its secrets are masked in config print', async (t) => {
  const env = { MAILMESH_DNS__TRANSFER__TSIG: JSON.stringify([{ name: 'xfr.key', secret }]), MAILMESH_DNS__TRANSFER__ALLOW: '' };
  const c = loadConfig({ env, cwd: tempDir(t) });
  t.same(c.dns.transfer.tsig, [{ name: 'xfr.key', algorithm: 'hmac-sha256', secret }], 'hmac-sha256 by default');
  t.same(c.dns.transfer.allow, [], 'an empty allow list: TSIG only');
  t.notMatch(JSON.stringify(maskedConfig(c)), secret, 'the secret is not printed');
  throwsCode(t, () => loadConfig({ env: { MAILMESH_DNS__TRANSFER__TSIG: '[{"name":"k","algorithm":"hmac-md5","secret":"x"}]' }, cwd: tempDir(t) }), 'CONFIG_INVALID');
});

t.test('RRL buckets: one per /24 (IPv4) and /56 (IPv6)', async (t) => {
  const rrl = new ResponseRateLimiter({ responsesPerSecond: 1, burst: 2, slip: 0 }, () => 0);
  const take = (address: string, n: number) => Array.from({ length: n }, () => rrl.check(address));
  t.same(take('192.0.2.1', 3), ['send', 'send', 'drop']);
  t.same(take('192.0.2.200', 1), ['drop'], 'the same /24 shares the bucket');
  t.same(take('::ffff:192.0.2.9', 1), ['drop'], 'an IPv4-mapped address is its IPv4 address');
  t.same(take('192.0.3.1', 2), ['send', 'send'], 'another /24 has its own');
  t.same(take('2001:db8:0:1::1', 2), ['send', 'send']);
  t.same(take('2001:db8:0:ff::2', 1), ['drop'], 'the same /56');
  t.same(take('2001:db8:0:100::1', 1), ['send'], 'another /56');
  throwsCode(t, () => new ResponseRateLimiter({ exempt: ['10.0.0.0/'] }, () => 0), 'CONFIG_INVALID', 'an empty prefix length');
  throwsCode(t, () => new ResponseRateLimiter({ ipv6PrefixLength: 129 }, () => 0), 'CONFIG_INVALID');
});
