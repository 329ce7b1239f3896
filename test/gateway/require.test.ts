import t from 'tap';
import { openPgpKeyOwner } from '../../directory/dane.js';
import { domainKeyAddress, parseDomain } from '../../directory/domain.js';
import { Discovery } from '../../federation/discovery.js';
import { stubResolver } from '../../federation/dns.js';
import { importThirdParty } from '../../federation/importer.js';
import { MemoryPinStore } from '../../federation/pins.js';
import { MailPolicy } from '../../gateway/gateway.js';
import { loopbackPair } from '../../cli/demo/loopback.js';
import { DEFAULT_POLICY, memoryDirectory, run } from '../helpers.js';
import { publishOpenPgpKey, startZone } from '../federation/helpers.js';

/**
 * `policy.*.mode: require` takes only an authenticated key (docs/federation.md "Key trust"): one
 * found over plain DNS is refused like no key at all; an imported one (or a signed directory
 * record, a DNSSEC-validated answer, a pin of those) is used.
 */
t.test('mode require over SMTP: a key found over plain DNS is not enough', async (t) => {
  const pol = { ...DEFAULT_POLICY, domains: { 'beta.test': { mode: 'require' as const } } };
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], { policies: [pol] });
  t.teardown(close);
  const [alpha, beta] = members;
  const swaks = (args: string[]) => run('swaks', ['--server', '127.0.0.1', '--port', String(alpha.smtpPort), '--helo', 'client.alpha.test', '--from', 'a@alpha.test', '--to', 'b@beta.test', ...args], { allowFail: true });

  // alpha finds beta's key in beta's own DNS, over plain UDP: unauthenticated.
  const refused = await swaks(['--quit-after', 'RCPT']);
  t.match(refused.stdout.toString(), /<\*\* 550 5\.7\.1 Encryption to beta\.test is required and not possible: no authenticated key for beta\.test \(key trust unauthenticated\)/, 'refused at RCPT like "no key"');
  t.equal(beta.sink.messages.length + beta.arrived.length, 0, 'nothing went out');

});

t.test('mode require: an unauthenticated key is refused, an imported one is used; auto takes any key', async (t) => {
  // beta.test's own DNS (plain UDP) publishes its pin and OPENPGPKEY; alpha.test is ours.
  const zone = await startZone(t);
  const beta = await (await memoryDirectory()).addDomain('beta.test');
  zone.pin({ ...beta, keys: { openpgp: beta.keys.openpgp } });
  await publishOpenPgpKey(zone, openPgpKeyOwner(domainKeyAddress(parseDomain('beta.test'))), beta);
  const own = await memoryDirectory();
  await own.addDomain('alpha.test');
  const discovery = (directories: { url: string }[] = []) =>
    new Discovery({
      sources: { resolver: stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 }), wellKnownBase: () => 'http://127.0.0.1:1', clock: () => new Date(), timeoutMs: 2000 },
      directories,
      pins: new MemoryPinStore(),
      local: (d) => own.findRecord(d, { unpublished: true }),
    });
  const gateway = async (mode: 'auto' | 'require', d = discovery()) => {
    const mail = await MailPolicy.create({ directory: own, discovery: d, policy: { ...DEFAULT_POLICY, default: { ...DEFAULT_POLICY.default, mode } }, authservId: 'mx.alpha.test' });
    t.teardown(() => mail.close());
    return () => mail.recipientPolicy(parseDomain('beta.test'), 'outbound', 'a@alpha.test', 'b@beta.test');
  };
  const [auto, require] = [await gateway('auto'), await gateway('require')];

  t.match(await auto(), { tag: 'encrypt:pgp-mime:beta.test' }, 'auto: the unauthenticated key is used (opportunistic)');
  t.match(await require(), { refuse: { code: 550, lines: [/no authenticated key for beta\.test \(key trust unauthenticated\)/] } }, 'require: refused like no key');
  // A configured directory that is down might have held the key signed: try again later, no bounce.
  const requireDirectoryDown = await gateway('require', discovery([{ url: 'http://127.0.0.1:1' }]));
  t.match(await requireDirectoryDown(), { refuse: { code: 451, lines: [/^4\.4\.3 No authenticated key for beta\.test yet/] } }, 'require, a directory unreachable: 451');

  // The operator imports beta's key (checked against the domain): trust `imported`.
  await importThirdParty(own, 'beta.test', Buffer.from(beta.keys.openpgp!.armored), { trustAnchors: [], publish: false, origin: 'test' });
  t.match(await require(), { tag: 'encrypt:pgp-mime:beta.test' }, 'require: the imported key is used');
});
