/**
 * DNS face throughput (docs/architecture.md "Performance anchors"), side by side in one run: our DNS face,
 * NSD 4.6 serving the zone our `exportZone` renders, and a bare Node UDP responder that answers
 * from precomputed messages (what a lean hot path can reach). The load generator is dnsperf
 * with EDNS(0) (so OPENPGPKEY answers fit in UDP), the same settings for all three, over
 * OPENPGPKEY and TXT questions for every member domain. Prints qps and the ratios.
 *
 *   npm run bench:dns -- [domains=4] [seconds=10] [rounds=2]
 *
 * Needs the Debian packages nsd and dnsperf. See bench/README.md and BENCHMARKS.md.
 */
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDnsServer, exportZone } from '../directory/dns/dns.js';
import { TYPE } from '../directory/dnswire.js';
import { memoryDirectory, query, ZONE, zoneOptions } from '../test/directory/dns/helpers.js';
import { freePort, run } from '../test/helpers.js';
import { interleave, mean, ratio, scratchDir, startDaemon, table } from './lib.js';

const domains = Number(process.argv[2] ?? 4);
const seconds = Number(process.argv[3] ?? 10);
const rounds = Number(process.argv[4] ?? 2);
// One dnsperf thread and client (the other core runs the server), up to 200 queries in flight.
const DNSPERF = ['-s', '127.0.0.1', '-e', '-T', '1', '-c', '1', '-q', '200', '-t', '2', '-l', String(seconds)];

const directory = await memoryDirectory();
const names = Array.from({ length: domains }, (_, i) => `d${i}.bench.example`);
for (const n of names) await directory.addDomain(n);
const opts = zoneOptions();

// Ours.
// One client address sends everything: response-rate limiting (on by default) would measure itself, not the server.
const ours = await createDnsServer({ directory, ...opts, rrl: { responsesPerSecond: 0 } });
const oursPort = (await ours.listen('127.0.0.1', 0)).port;

// The bare responder: one precomputed answer per distinct query (everything after the ID, OPT
// included, is the key; the answer is ours, made once). The hot path is a Map lookup, a copy
// and the ID patched in (RFC 1035 §4.1.1: the answer carries the query's ID).
const bare = dgram.createSocket('udp4');
const answers = new Map<string, Buffer>();
bare.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  const k = msg.toString('latin1', 2);
  let a = answers.get(k);
  if (!a) answers.set(k, (a = ours.handle(msg, 'udp')[0]!));
  const out = Buffer.from(a);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  bare.send(out, rinfo.port, rinfo.address);
});
await new Promise<void>((r) => bare.bind(0, '127.0.0.1', r));
const barePort = bare.address().port;

// NSD, foreground, one server process, serving our exported zone. minimal-responses: the answer
// section only, like ours (no NS in authority); rrl-ratelimit 0: no response rate limiting.
const dir = scratchDir('mailmesh-bench-nsd-');
writeFileSync(join(dir, 'zone.db'), await exportZone(directory, opts));
const nsdPort = await freePort();
writeFileSync(
  join(dir, 'nsd.conf'),
  `server:
  ip-address: 127.0.0.1
  port: ${nsdPort}
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  database: ""
  zonelistfile: "${dir}/zone.list"
  xfrdfile: "${dir}/xfrd.state"
  xfrdir: "${dir}"
  server-count: 1
  minimal-responses: yes
  rrl-ratelimit: 0
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: ${ZONE}
  zonefile: zone.db
`,
);
const nsd = await startDaemon('nsd', ['-d', '-c', join(dir, 'nsd.conf')], /nsd started/);

// The query file: OPENPGPKEY (TYPE61, RFC 7929) and TXT for every member domain.
const queryFile = join(dir, 'queries.txt');
writeFileSync(queryFile, names.flatMap((n) => [`${n}.${ZONE} OPENPGPKEY`, `${n}.${ZONE} TXT`]).join('\n') + '\n');

/** One question over UDP with EDNS; the answer message. */
async function ask(port: number, name: string, type: number): Promise<Buffer> {
  const s = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from port ${port}`)), 2000);
      s.once('message', (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      s.send(query(name, type, { edns: 1232 }), port, '127.0.0.1');
    });
  } finally {
    s.close();
  }
}

// The three must give the same answers (AA set, NOERROR, same answer RRs) before they are compared.
for (const n of names) {
  for (const type of [TYPE.OPENPGPKEY, TYPE.TXT]) {
    const [a, b, c] = await Promise.all([oursPort, nsdPort, barePort].map((p) => ask(p, `${n}.${ZONE}`, type)));
    // From the answer count on, without the OPT record's trailing bytes (NSD may advertise another size).
    const body = (m: Buffer) => m.subarray(6, m.length - 11);
    if ((a!.readUInt16BE(2) & 0x040f) !== 0x0400 || a!.readUInt16BE(6) < 1) throw new Error(`ours: no answer for ${n} ${type}`);
    if (!body(a!).equals(body(b!)) || !body(a!).equals(body(c!))) throw new Error(`answers differ for ${n} type ${type}`);
  }
}

interface Result {
  qps: number;
  completed: string;
  rcodes: string;
  response: number;
}

async function dnsperf(port: number): Promise<Result> {
  const { stdout } = await run('dnsperf', [...DNSPERF, '-p', String(port), '-d', queryFile]);
  const text = stdout.toString();
  const field = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf output not understood:\n${text}`);
    return m[1]!;
  };
  return {
    qps: Number(field(/Queries per second:\s+([\d.]+)/)),
    completed: field(/Queries completed:\s+\d+ \(([\d.]+%)\)/),
    rcodes: field(/Response codes:\s+(.*)/).trim(),
    response: Number(field(/Average packet size:\s+request \d+, response (\d+)/)),
  };
}

const servers = [['NSD 4.6', nsdPort], ['bare Node UDP', barePort], ['mailmesh DNS face', oursPort]] as const;
const { results, load } = await interleave(servers, rounds, ([, port]) => dnsperf(port));
const qps = results.map((rs) => mean(rs.map((r) => r.qps)));
console.log(`dnsperf ${DNSPERF.join(' ')} -p <port>; ${names.length * 2} questions (OPENPGPKEY + TXT of ${names.length} domains); ${rounds} rounds`);
console.log(`load average ${load}`);
console.log(
  table(
    ['server', 'qps (mean)', 'qps per round', 'completed', 'rcodes (last round)', 'avg response (octets)', 'ratio to NSD', 'ratio to bare'],
    servers.map(([label], i) => {
      const rs = results[i]!;
      return [label, Math.round(qps[i]!), rs.map((r) => Math.round(r.qps)).join(' / '), rs.map((r) => r.completed).join(' / '), rs.at(-1)!.rcodes, rs.at(-1)!.response, ratio(qps[i]!, qps[0]!), ratio(qps[i]!, qps[1]!)];
    }),
  ),
);

await nsd.stop();
await ours.close();
await new Promise<void>((r) => bare.close(() => r()));
