import t from 'tap';
import type { Discovered } from '../../federation/discovery.js';
import { MailPolicy } from '../../gateway/gateway.js';
import { parseDomain } from '../../directory/domain.js';
import { Metrics } from '../../directory/metrics.js';
import { DEFAULT_POLICY, memoryDirectory } from '../helpers.js';

// mailmesh_pin_violations_total{domain,key}: counted when discovery finds a violation (a fresh
// lookup, cache "miss"), not again for each cached answer that still carries it. The discovery is
// the gateway's injected KeyDiscovery, answering as federation/discovery.ts does after a refused
// key change (the pinned key kept, source "pinned", the violation attached); the real refusal is
// test/federation/e2e.test.ts's.

const directory = await memoryDirectory();
const peer = await (await memoryDirectory()).addDomain('peer.test');
const violation = { domain: 'peer.test', key: 'openpgp' as const, pinned: peer.keys.openpgp!.fingerprint, offered: 'F'.repeat(40), source: 'dns', at: new Date().toISOString() };
const answers: Discovered['cache'][] = ['miss', 'hit', 'hit', 'miss'];
const discovery = {
  async discover(domain: string): Promise<Discovered> {
    return { domain, keys: peer.keys, provenance: { source: 'pinned', verified: 'pinned key kept', at: violation.at, trust: 'pinned' }, cache: answers.shift()!, violation } as Discovered;
  },
};

t.test('each fresh lookup that finds a violation counts once; cached answers do not', async (t) => {
  const metrics = new Metrics();
  const mail = await MailPolicy.create({ directory, discovery, policy: DEFAULT_POLICY, authservId: 'mx.test', metrics });
  t.teardown(() => mail.close());
  for (let i = 0; i < 4; i++) await mail.recipientPolicy(parseDomain('peer.test'), 'outbound', 'a@example.org', 'b@peer.test').catch(() => undefined);
  t.equal(answers.length, 0, 'four lookups made');
  t.match(await metrics.render(), /^mailmesh_pin_violations_total\{domain="peer.test",key="openpgp"\} 2$/m);
});
