import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CaptureSink } from '../../cli/demo/loopback.js';
import { pollUntil } from '../directory/store/redis-servers.js';
import { run, tempDir } from '../helpers.js';
import { messageId, session, sink, startNode, transaction, type Node, type Outcome } from './helpers.js';
import { daemon, holders, inNs, makeLan, netnsSkip, type Daemon, type Lan } from './netns.js';

// Issue 16, docs/ha.md: two mailmesh nodes in network namespaces share one address through
// keepalived (the deploy/keepalived sample, addresses swapped in), one Redis and one internal
// mail server. A client sends continuously to the shared address and retries a 4xx or a lost
// connection until 250, as an MTA would. 1: the holder loses mailmesh and keepalived to SIGKILL.
// 2: node 1 comes back and stays backup (nopreempt); node 2 loses only mailmesh, and its
// keepalived's check-mailmesh hands the address over. Every 250 must be in the sink, and DNS on
// the shared address answers the same throughout.
const DEPLOY = new URL('../../deploy/keepalived/', import.meta.url).pathname;
/**
 * keepalived runs check-mailmesh as `nobody` (enable_script_security), so the script and every
 * folder above it must be readable by nobody and writable by root only: a checkout in a 0700
 * temporary folder (CI's fresh clone) is neither. The test runs a copy from a folder of its own
 * under /run (root's, 0755), removed at the end.
 */
let CHECK = '';
function installCheck(t: Test): string {
  const dir = mkdtempSync('/run/mailmesh-vrrp-check-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const file = join(dir, 'check-mailmesh');
  copyFileSync(join(DEPLOY, 'check-mailmesh'), file);
  chmodSync(file, 0o755);
  return file;
}
const TO = 'bob@ha.test';
// The namespaces are new and this test's own: nothing else listens there, so the real ports.
const SMTP_PORT = 25;
const DNS_PORT = 53;
const SENDERS = 4;
const PER_PHASE = 20; // messages before and after each failover
const POLLS = 600; // 50 ms each: 30 s, the functional timeout of every wait
const GIVE_UP_MS = 30_000; // for one message
const QNAME = 'ha.test.dir.mailmesh.test';

/** The sample keepalived.conf made node i's: its own address, the peer's, the test's shared address. */
function keepalivedConf(lan: Lan, i: number): string {
  const swaps: [string | RegExp, string][] = [
    [/"\/etc\/keepalived\/check-mailmesh /g, `"${CHECK} `],
    ['router_id mailmesh-a', `router_id mailmesh-${i + 1}`],
    ['unicast_src_ip 192.0.2.11', `unicast_src_ip ${lan.nodeAddr(i)}`],
    [/unicast_peer \{\s*192\.0\.2\.12\s*\}/, `unicast_peer {\n    ${lan.nodeAddr(1 - i)}\n  }`],
    ['192.0.2.100/24 dev eth0', `${lan.vip}/24 dev eth0`],
    ['priority 150', `priority ${i === 0 ? 150 : 100}`],
  ];
  let conf = readFileSync(join(DEPLOY, 'keepalived.conf'), 'utf8');
  for (const [from, to] of swaps) {
    if (typeof from === 'string' ? !conf.includes(from) : !from.test(conf)) throw new Error(`deploy/keepalived/keepalived.conf no longer has ${String(from)}`);
    conf = conf.replace(from, to);
  }
  return conf;
}

/** keepalived (VRRP only) in node i's namespace, in the foreground, with its own files; resolves once it runs as BACKUP. */
async function keepalived(t: Test, lan: Lan, dir: string, i: number): Promise<Daemon> {
  const f = (name: string) => join(dir, `node${i + 1}-${name}`);
  writeFileSync(f('keepalived.conf'), keepalivedConf(lan, i));
  const args = ['-n', '-l', '-D', '-G', '-P', '-f', f('keepalived.conf'), '-p', f('keepalived.pid'), '--vrrp_pid', f('vrrp.pid'), '--checkers_pid', f('checkers.pid')];
  const d = await daemon(t, lan.nodes[i]!, 'keepalived', args, /Entering BACKUP STATE/);
  t.notMatch(d.log(), /Disabling track script|cannot be accessed|unsafe/i, `node ${i + 1} keepalived runs check-mailmesh`);
  return d;
}

/** The zone's answer for the test domain over the shared address (empty if there is none). */
async function dns(lan: Lan): Promise<string> {
  const r = await run('kdig', [`@${lan.vip}`, '-p', String(DNS_PORT), '+timeout=1', '+retry=0', '+short', QNAME, 'TYPE61'], { allowFail: true });
  return r.code === 0 ? r.stdout.toString().trim() : '';
}

/** A client sending to the shared address without pause, one message per connection, retrying until 250. */
function traffic(lan: Lan) {
  const runId = randomBytes(4).toString('hex');
  const s = { issued: [] as string[], accepted: new Set<string>(), retried: [] as string[], failure: undefined as Error | undefined, since: 0, after: 0, first: 0 };
  const vip = { smtp: { host: lan.vip, port: SMTP_PORT } };
  async function send(id: string): Promise<void> {
    const started = Date.now();
    for (;;) {
      const c = await session(vip);
      const out: Outcome = 'lost' in c ? c : await transaction(c, TO, id);
      if (!('lost' in c)) await c.quit().catch(() => undefined);
      if ('code' in out && out.code === 250) break;
      if ('code' in out && out.code >= 500) throw new Error(`${id}: ${out.code} at ${out.stage}`);
      s.retried.push('code' in out ? `${out.code} at ${out.stage}` : out.lost);
      if (Date.now() - started > GIVE_UP_MS) throw new Error(`${id}: no 250 within ${GIVE_UP_MS} ms; last ${JSON.stringify(out)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    s.accepted.add(id);
    s.after++;
    s.first ||= Date.now();
  }
  let stop = false;
  const senders = Array.from({ length: SENDERS }, async () => {
    while (!stop && !s.failure) {
      const id = `<vrrp-${runId}-${s.issued.length}@client.test>`;
      s.issued.push(id);
      await send(id).catch((e: Error) => (s.failure = e));
    }
  });
  return {
    s,
    /** From now, count the 250s after an event. */
    mark: () => Object.assign(s, { since: Date.now(), after: 0, first: 0 }),
    /** Polls (30 s at most), failing at once if a message could not be sent; resolves with the ms since `mark`. */
    until: async (what: string, check: () => boolean | Promise<boolean>) => {
      await pollUntil(what, async () => {
        if (s.failure) throw s.failure;
        return check();
      }, POLLS);
      return Date.now() - s.since;
    },
    stop: async () => {
      stop = true;
      await Promise.all(senders);
      if (s.failure) throw s.failure;
    },
  };
}

type Traffic = ReturnType<typeof traffic>;

/** Runs `act` under traffic and waits for the address on node `to`, DNS's answer and PER_PHASE more 250s; comments the gaps. */
async function failover(t: Test, lan: Lan, load: Traffic, zone: string, to: number, act: () => Promise<void>): Promise<void> {
  await load.until(`${PER_PHASE} messages before`, () => load.s.after >= PER_PHASE);
  await act();
  load.mark();
  const [moved, dnsGap] = await Promise.all([
    load.until(`node ${to + 1} to take the shared address`, async () => (await holders(lan)).includes(to)),
    load.until(`DNS on the shared address from node ${to + 1}`, async () => (await dns(lan)) === zone),
  ]);
  await load.until(`${PER_PHASE} messages through node ${to + 1}`, () => load.s.after >= PER_PHASE);
  t.comment(`address on node ${to + 1} after ${moved} ms, first SMTP 250 after ${load.s.first - load.s.since} ms, DNS answered after ${dnsGap} ms`);
  t.equal(await dns(lan), zone, 'DNS on the shared address: the same answer as before');
}

/** Every 250 is in the sink, the sink has nothing else, every message got its 250. */
function noneLost(t: Test, load: Traffic, inbox: CaptureSink): void {
  const { issued, accepted, retried } = load.s;
  t.equal(accepted.size, issued.length, 'every message the client issued got a 250 in the end');
  const got = inbox.messages.map((m) => messageId(m.data));
  const inSink = new Set(got);
  t.same(
    [...accepted].filter((id) => !inSink.has(id)),
    [],
    'every message that got 250 is in the sink (none lost)',
  );
  t.same(
    got.filter((id) => !id || !accepted.has(id)),
    [],
    'and the sink has only messages that got 250',
  );
  t.comment(`${issued.length} messages, ${got.length} received (${got.length - inSink.size} duplicates), ${retried.length} retries: ${[...new Set(retried)].join('; ')}`);
}

/** The source address of the answer from a UDP echo bound to 0.0.0.0 on node 1 (the holder), asked on the shared address. */
async function wildcardUdpSource(t: Test, lan: Lan): Promise<string> {
  const echo = "const s = require('dgram').createSocket('udp4'); s.on('message', (m, r) => s.send(m, r.port, r.address)); s.bind(5353, '0.0.0.0', () => console.log('bound'));";
  const server = await daemon(t, lan.nodes[0]!, 'node', ['-e', echo], /bound/);
  const client = createSocket('udp4');
  try {
    const answer = new Promise<string>((resolve, reject) => {
      client.once('message', (_m, r) => resolve(r.address));
      setTimeout(() => reject(new Error('no answer from the UDP echo on node 1 within 10 s')), 10_000).unref();
    });
    client.send('ping', 5353, lan.vip);
    return await answer;
  } finally {
    client.close();
    await server.kill();
  }
}

t.test('VRRP: the holder of the shared address is SIGKILLed, SMTP and DNS go on on the other node, no mail is lost', { skip: netnsSkip() }, async (t) => {
  CHECK = installCheck(t);
  const lan = await makeLan(t, 2);
  const dir = tempDir(t, 'mailmesh-vrrp-');
  await daemon(t, lan.lan, 'redis-server', ['--bind', lan.store, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir], /Ready to accept connections/);
  const inbox = await sink(t, lan.host);
  const env = { url: `redis://${lan.store}:6379/0`, prefix: 'mailmesh-vrrp:', masterKey: randomBytes(32).toString('base64'), demoDomain: 'ha.test', internalPort: inbox.port };
  const nodeEnv = {
    MAILMESH_SMTP__HOST: '0.0.0.0', // TCP answers from the address it was reached on; check-mailmesh uses 127.0.0.1
    MAILMESH_SMTP__PORT: String(SMTP_PORT),
    MAILMESH_SMTP__INTERNAL_SERVER: `${lan.host}:${inbox.port}`,
    MAILMESH_DNS__ENABLED: 'true',
    MAILMESH_DNS__HOST: lan.vip, // UDP must bind it (ip_nonlocal_bind=1): a wildcard would answer from eth0's own address
    MAILMESH_DNS__PORT: String(DNS_PORT),
  };
  const mailmesh = (i: number): Promise<Node> => startNode(t, env, { wrap: ['ip', 'netns', 'exec', lan.nodes[i]!], env: nodeEnv });
  const nodes = [await mailmesh(0), await mailmesh(1)];

  t.equal((await inNs(lan.nodes[0]!, CHECK, [`127.0.0.1:${SMTP_PORT}`], { allowFail: true })).code, 0, 'check-mailmesh: 0 for a serving node');
  const down = await inNs(lan.nodes[0]!, CHECK, ['127.0.0.1:1'], { allowFail: true });
  t.ok(down.code !== 0 && down.stderr.trim() === 'check-mailmesh: no SMTP on 127.0.0.1:1', `check-mailmesh: non-zero and why, for nothing listening (${down.stderr.trim()})`);

  // Node 1 first, so it is the master; nopreempt keeps it so when node 2 arrives.
  const vrrp = [await keepalived(t, lan, dir, 0)];
  await pollUntil('node 1 to hold the shared address', async () => (await holders(lan)).join() === '0', POLLS);
  vrrp.push(await keepalived(t, lan, dir, 1));
  t.same(await holders(lan), [0], 'node 1 holds the shared address, node 2 is backup');
  const zone = await dns(lan);
  t.match(zone, /\S/, `DNS answers ${QNAME} on the shared address`);

  t.equal(await wildcardUdpSource(t, lan), lan.nodeAddr(0), 'a wildcard UDP socket answers from the node address, not the shared one: dns.host must be the shared address');

  const load = traffic(lan);
  await t.test('1: SIGKILL of mailmesh and keepalived on the holder', async (t) => {
    // The harsh way: no VRRP priority-0 goodbye; node 2 takes over when the adverts stop.
    await failover(t, lan, load, zone, 1, () => Promise.all([nodes[0]!.kill(), vrrp[0]!.kill()]).then(() => undefined));
    t.equal(nodes[0]!.child.signalCode, 'SIGKILL', 'node 1 mailmesh was SIGKILLed');
    t.equal(vrrp[0]!.child.signalCode, 'SIGKILL', 'node 1 keepalived was SIGKILLed');
    t.match(vrrp[1]!.log(), /Entering MASTER STATE/, 'node 2 keepalived became master');
    // A dead machine takes its addresses with it; killed processes do not: the kernel keeps it.
    t.same(await holders(lan), [0, 1], 'the killed keepalived left the address on node 1 (gratuitous ARP sent the client to node 2)');
  });

  await t.test('2: node 1 returns as backup; node 2 loses mailmesh, its health check moves the address back', async (t) => {
    nodes[0] = await mailmesh(0);
    vrrp[0] = await keepalived(t, lan, dir, 0);
    t.same(await holders(lan), [1], 'keepalived on node 1 removed the address its killed predecessor left');
    // Node 1 has the higher priority: without nopreempt it takes the address once its Master_Down_Interval
    // (3 adverts + skew, 3.4 s, RFC 5798 §6.1) passes; watch for twice that.
    await new Promise((r) => setTimeout(r, 7000));
    t.same(await holders(lan), [1], 'node 2 keeps the address: nopreempt');
    await failover(t, lan, load, zone, 0, () => nodes[1]!.kill());
    t.match(vrrp[1]!.log(), /Entering FAULT STATE/, 'node 2 keepalived went to FAULT on check-mailmesh');
    t.same(await holders(lan), [0], 'node 1 alone holds the address');
    t.match(vrrp[0]!.log(), /Backup received priority 0 advertisement/, 'node 2 handed over with a priority-0 advert');
  });

  await load.stop();
  noneLost(t, load, inbox);
});
