import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { freePort, tempDir } from '../../helpers.js';
import { kdig, memoryDirectory, rdataOf, startDns, ZONE } from './helpers.js';

t.test('Knot, a secondary of our server, transfers the zone by AXFR and answers the same', async (t) => {
  const directory = await memoryDirectory();
  await directory.addDomain('example.org');
  const { port: primary, server } = await startDns(t, directory);
  const dir = tempDir(t, 'mailmesh-knot-');
  for (const sub of ['run', 'db', 'zones']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const conf = join(dir, 'knot.conf');
  writeFileSync(conf, `server:
    rundir: "${dir}/run"
    listen: 127.0.0.1@${port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "${dir}/db"
log:
  - target: stderr
    any: info
remote:
  - id: mailmesh
    address: 127.0.0.1@${primary}
template:
  - id: default
    storage: "${dir}/zones"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: ${ZONE}
    master: mailmesh
`);
  const knotd = spawn('knotd', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  knotd.stderr.on('data', (c: Buffer) => (log += c.toString()));
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
