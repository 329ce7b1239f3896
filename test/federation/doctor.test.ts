import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { LdapServer } from '../../directory/ldap/ldap.js';
import { stubResolver } from '../../federation/dns.js';
import { renderDoctor } from '../../cli/commands.js';
import { doctor } from '../../federation/doctor.js';
import { JoinService, postJoin } from '../../federation/join.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { baseFor } from '../../federation/web.js';
import { startDns, ZONE } from '../directory/dns/helpers.js';
import { startHttp } from '../directory/http/helpers.js';
import { run, tempDir } from '../helpers.js';
import { memoryDirectory, startZone } from './helpers.js';

const zone = await startZone(t);
const sources = { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: baseFor('http://127.0.0.1:1/{domain}'), clock: () => new Date(), timeoutMs: 2000 };
const dir = await memoryDirectory();
const { base: url } = await startHttp(t, dir, undefined, { federation: new JoinService({ directory: dir, sources, allowPrivateAddresses: true }) });
const { server: dns, port: dnsPort } = await startDns(t, dir, { ttl: 60, hostmaster: 'h@mailmesh.test', directoryUrl: url });
const ldap = await LdapServer.create({ directory: dir, base: 'dc=mailmesh' });
t.teardown(() => ldap.close());
const ldapUrl = `ldap://127.0.0.1:${(await ldap.listen(0, '127.0.0.1')).port}/dc=mailmesh`;
const directories = [{ url, zone: ZONE, nameservers: [`127.0.0.1:${dnsPort}`] }];

const gw = await memoryDirectory();
const healthy = await gw.addDomain('healthy.test');
zone.pin(healthy, url);
await postJoin(url, healthy.signed!);
await dns.settled();

t.test('doctor on a healthy domain: every row passes', async (t) => {
  const rows = await doctor('healthy.test', { sources, directories, local: healthy, pins: new MemoryPinStore(), ldap: [ldapUrl] });
  t.same(rows.map((r) => [r.check.split(' ')[0], r.result]), [['REST', 'pass'], ['DNS', 'pass'], ['WKD', 'pass'], ['_mailmesh.healthy.test', 'pass'], ['LDAP', 'pass'], ['key', 'pass'], ['pin', 'pass']], renderDoctor(rows));
});

t.test('doctor on a broken domain: the failing rows with their fixes', async (t) => {
  const broken = await gw.addDomain('broken.test');
  const pins = new MemoryPinStore();
  await pins.put('broken.test', { keys: {}, at: new Date().toISOString(), violations: [{ domain: 'broken.test', pinned: 'A'.repeat(40), offered: 'B'.repeat(40), source: 'directory-https', at: new Date().toISOString() }] });
  const rows = await doctor('broken.test', { sources, directories, local: broken, pins, expiryDays: 400 });
  const by = Object.fromEntries(rows.map((r) => [r.check.split(' ')[0], r]));
  t.equal(by.REST?.result, 'fail');
  t.match(by.REST?.fix, `mailmesh join ${url}`);
  t.equal(by.DNS?.result, 'fail');
  t.equal(by.WKD?.result, 'fail');
  t.equal(by['_mailmesh.broken.test']?.result, 'fail');
  t.match(by['_mailmesh.broken.test']?.fix, `_mailmesh.broken.test. 300 IN TXT "v=mm1; pgp=${broken.keys.openpgp!.fingerprint}`);
  t.equal(by.key?.result, 'warn', 'expires within 400 days: a warning (expired would fail)');
  t.match(by.key?.fix, 'mailmesh domain roll broken.test');
  t.match(by.pin?.fix, 'mailmesh pins show broken.test');
  t.equal(by.pin?.result, 'fail');
  t.match(renderDoctor(rows), /FAIL {2}REST record/);
});

t.test('the CLI: join prints the TXT record to publish; doctor exits 0 / 1; lookup shows provenance', async (t) => {
  const cwd = tempDir(t);
  const cfg = {
    dataDir: join(cwd, 'data'),
    demo: { domain: 'cli.test' },
    federation: { resolvers: [`127.0.0.1:${zone.port}`], directories, wellKnownBase: 'http://127.0.0.1:1/{domain}' },
  };
  writeFileSync(join(cwd, 'mailmesh.yaml'), stringify(cfg));
  const mm = (args: string[]) => run('node', ['--no-warnings', '--import', 'data:text/javascript,import { register } from "node:module"; import { pathToFileURL } from "node:url"; register("@isaacs/ts-node-temp-fork-for-pr-2009/esm", pathToFileURL("./"));', join(process.cwd(), 'cli/main.ts'), ...args], { cwd: process.cwd(), env: { MAILMESH_CONFIG: join(cwd, 'mailmesh.yaml'), MAILMESH_LOG__LEVEL: 'silent' }, allowFail: true });
  await mm(['domain', 'add', 'cli.test']);
  const first = await mm(['join', url]);
  t.equal(first.code, 1, first.stderr);
  const line = /^_mailmesh\.cli\.test\. 300 IN TXT "(.*)"$/m.exec(first.stdout.toString());
  t.ok(line, first.stdout.toString());
  zone.setTxt('_mailmesh.cli.test', line![1]!);
  const second = await mm(['join', url]);
  t.equal(second.code, 0, second.stdout.toString() + second.stderr);
  await dns.settled();
  const ok = await mm(['doctor', 'cli.test']);
  t.equal(ok.code, 0, ok.stdout.toString());
  const bad = await mm(['doctor', 'healthy.test', '--ldap', 'ldap://127.0.0.1:1/dc=x']);
  t.equal(bad.code, 1, 'an unreachable LDAP fails the check');
  t.match(bad.stdout.toString(), /FAIL {2}LDAP/);
  const look = await mm(['lookup', 'someone@healthy.test']);
  t.equal(look.code, 0, look.stderr);
  t.match(look.stdout.toString(), new RegExp(`openpgp +${healthy.keys.openpgp!.fingerprint}`));
  // The directory's DNS answers first (plain DNS); its signed record with the same keys authenticates them.
  t.match(look.stdout.toString(), /source +directory-https/);
  t.match(look.stdout.toString(), /trust +signed-record/);
});
