import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { freePort, knotServerConf, tempDir } from '../../helpers.js';
import { kdig, memoryDirectory, rdataOf, startDns, ZONE } from './helpers.js';

/** knotd as a secondary of our server on 127.0.0.1:primary (TSIG-signed transfers when `key` is given); ready when it serves our serial. */
async function startKnot(t: Test, primary: number, key?: { name: string; algorithm: string; secret: string }) {
  const dir = tempDir(t, 'mailmesh-knot-');
  for (const sub of ['run', 'db', 'zones']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const conf = join(dir, 'knot.conf');
  writeFileSync(conf, `${knotServerConf(dir, port)}${key ? `key:
  - id: ${key.name}
    algorithm: ${key.algorithm}
    secret: ${key.secret}
` : ''}remote:
  - id: mailmesh
    address: 127.0.0.1@${primary}
${key ? `    key: ${key.name}\n` : ''}template:
  - id: default
    storage: "${dir}/zones"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: ${ZONE}
    master: mailmesh
`);
  const knotd = spawn('knotd', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const state = { log: '' };
  knotd.stderr.on('data', (c: Buffer) => (state.log += c.toString()));
  const exited = new Promise<number | null>((r) => knotd.on('exit', (code) => r(code)));
  t.teardown(async () => {
    knotd.kill('SIGTERM');
    await exited;
  });
  // Ready when Knot answers authoritatively with our serial: poll with kdig, bounded.
  let soa: Awaited<ReturnType<typeof kdig>> | undefined;
  for (let i = 0; i < 100; i++) {
    if (knotd.exitCode !== null) break;
    soa = await kdig(port, [ZONE, 'SOA']).catch(() => undefined);
    if (soa?.flags.includes('aa') && soa.answers.length === 1) break;
    await delay(100);
  }
  return { port, soa, state };
}

t.test('Knot, a secondary of our server, transfers the zone by AXFR and answers the same', async (t) => {
  const directory = await memoryDirectory();
  await directory.addDomain('example.org');
  const { port: primary, server } = await startDns(t, directory);
  const { port, soa, state } = await startKnot(t, primary);
  const log = state.log;
  t.ok(soa?.flags.includes('aa'), `knotd serves the zone (log: ${log.split('\n').filter((l) => /error|warning|AXFR/i.test(l)).join(' | ')})`);
  t.equal(Number(rdataOf(soa!.answers[0]!).split(' ')[2]), server.serial, 'at our serial');
  t.match(log, /AXFR, incoming.*finished/i, 'it came by AXFR');

  for (const type of ['TYPE61', 'TXT', 'TYPE53']) {
    const ours = await kdig(primary, [`example.org.${ZONE}`, type, '+tcp']);
    const theirs = await kdig(port, [`example.org.${ZONE}`, type, '+tcp']);
    t.equal(theirs.answers.length, 1, `Knot answers ${type}`);
    t.same(theirs.answers.map(rdataOf), ours.answers.map(rdataOf), `${type} identical to ours`);
  }
  t.equal((await kdig(port, [`nope.${ZONE}`, 'TXT'])).status, 'NXDOMAIN', 'and the same negative answers');
});

t.test('Knot transfers with TSIG (RFC 8945) where its address is not allowed; unsigned, it is refused', async (t) => {
  const directory = await memoryDirectory();
  await directory.addDomain('example.org');
  const key = { name: 'knot-xfr.key', algorithm: 'hmac-sha256', secret: randomBytes(32).toString('base64') };
  const { port: primary, server } = await startDns(t, directory, { axfrMessageSize: 1024, transfer: { allow: [], tsig: [{ ...key, algorithm: 'hmac-sha256' }] } });
  t.match((await kdig(primary, ['AXFR', ZONE])).err, /REFUSED/, 'an unsigned transfer from loopback is refused');
  const { port, soa, state } = await startKnot(t, primary, key);
  t.ok(soa?.flags.includes('aa'), `knotd serves the zone (log: ${state.log.split('\n').filter((l) => /error|warning|AXFR|TSIG/i.test(l)).join(' | ')})`);
  t.equal(Number(rdataOf(soa!.answers[0]!).split(' ')[2]), server.serial, 'at our serial');
  t.match(state.log, /AXFR, incoming.*finished/i, 'it came by AXFR');
  t.notMatch(state.log, /TSIG|BADSIG|BADKEY|BADTIME/i, 'without a TSIG complaint');
  const ours = await kdig(primary, [`example.org.${ZONE}`, 'TYPE61', '+tcp']);
  const theirs = await kdig(port, [`example.org.${ZONE}`, 'TYPE61', '+tcp']);
  t.same(theirs.answers.map(rdataOf), ours.answers.map(rdataOf), 'the same key');
  t.match(await server.metrics.render(), /mailmesh_dns_transfers_total\{result="tsig"\} [1-9]/, 'the transfer was let through by its TSIG, not by address');
});
