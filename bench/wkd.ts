/**
 * WKD throughput over plain HTTP (docs/architecture.md "Performance anchors"), side by side in one run: our
 * HTTP face (rate limit off), nginx 1.22 serving the same key bytes as a static file at the same
 * path, and a bare fastify route answering from an in-memory Map (what a lean hot path can
 * reach). The load generator is wrk with the same settings for all three, on the advanced-method
 * URL of domainkey@<domain> (draft-koch-openpgp-webkey-service §3.1). Prints req/s and the ratios.
 *
 *   npm run bench:wkd -- [seconds=10] [rounds=2] [connections=50]
 *
 * Needs the Debian packages nginx and wrk. See bench/README.md and BENCHMARKS.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Fastify from 'fastify';
import { pino } from 'pino';
import { createHttpServer } from '../directory/http/http.js';
import { wkdHash } from '../directory/wkd.js';
import { get, memoryDirectory } from '../test/directory/http/helpers.js';
import { freePort, run } from '../test/helpers.js';
import { interleave, mean, ratio, scratchDir, startDaemon, table } from './lib.js';

const seconds = Number(process.argv[2] ?? 10);
const rounds = Number(process.argv[3] ?? 2);
const connections = Number(process.argv[4] ?? 50);
// One wrk thread (the other core runs the server), persistent connections.
const WRK = ['-t1', `-c${connections}`, `-d${seconds}s`];

const DOMAIN = 'bench.example';
const directory = await memoryDirectory();
await directory.addDomain(DOMAIN);
const path = `/.well-known/openpgpkey/${DOMAIN}/hu/${wkdHash('domainkey')}`;

// Ours: plain HTTP, no rate limit (no config), logging off.
const ours = await createHttpServer({ directory, logger: pino({ level: 'silent' }) });
await ours.listen({ host: '127.0.0.1', port: 0 });
const oursPort = (ours.server.address() as { port: number }).port;
const key = (await get(`http://127.0.0.1:${oursPort}${path}`)).body;
if (key.length < 100) throw new Error(`our WKD answer is not a key (${key.length} octets)`);

// The bare fastify route: the same bytes from a Map.
const bare = Fastify({ logger: false });
const byPath = new Map([[`${DOMAIN}/${wkdHash('domainkey')}`, key]]);
bare.get('/.well-known/openpgpkey/:domain/hu/:hash', (req, reply) => {
  const { domain, hash } = req.params as { domain: string; hash: string };
  const body = byPath.get(`${domain}/${hash}`);
  if (!body) return reply.code(404).send();
  return reply.type('application/octet-stream').send(body);
});
await bare.listen({ host: '127.0.0.1', port: 0 });
const barePort = (bare.server.address() as { port: number }).port;

// nginx 1.22, foreground, one worker, stock static-file serving of the same bytes at the same path.
// keepalive_requests is raised from its default of 1000 so that, like both Node servers, it keeps
// wrk's connections for the whole run.
const dir = scratchDir('mailmesh-bench-nginx-');
const file = join(dir, 'www', path);
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, key);
const nginxPort = await freePort();
const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/${k};`).join('\n');
writeFileSync(
  join(dir, 'nginx.conf'),
  `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
  access_log off;
${temp}
  default_type application/octet-stream;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${nginxPort};
    root ${dir}/www;
  }
}
`,
);
const nginx = await startDaemon('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], /start worker process/);

// The three must serve the same bytes before they are compared.
const servers = [['nginx 1.22', nginxPort], ['bare fastify', barePort], ['mailmesh HTTP face', oursPort]] as const;
for (const [label, port] of servers) {
  const r = await get(`http://127.0.0.1:${port}${path}?l=domainkey`);
  if (r.status !== 200 || !r.body.equals(key)) throw new Error(`${label} answers ${r.status} with other bytes`);
}

interface Result {
  rps: number;
  errors: string;
}

async function wrk(port: number): Promise<Result> {
  const { stdout } = await run('wrk', [...WRK, `http://127.0.0.1:${port}${path}?l=domainkey`]);
  const text = stdout.toString();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`wrk output not understood:\n${text}`);
  // wrk reports these lines only when they are not zero.
  const errors = [/Non-2xx or 3xx responses: \d+/, /Socket errors: .*/].map((re) => re.exec(text)?.[0]).filter(Boolean).join('; ');
  return { rps: Number(rps[1]), errors: errors || 'none' };
}

const { results, load } = await interleave(servers, rounds, ([, port]) => wrk(port));
const rps = results.map((rs) => mean(rs.map((r) => r.rps)));
console.log(`wrk ${WRK.join(' ')} http://127.0.0.1:<port>${path}?l=domainkey (${key.length} octets); ${rounds} rounds`);
console.log(`load average ${load}`);
console.log(
  table(
    ['server', 'req/s (mean)', 'req/s per round', 'errors', 'ratio to nginx', 'ratio to bare'],
    servers.map(([label], i) => {
      const rs = results[i]!;
      return [label, Math.round(rps[i]!), rs.map((x) => Math.round(x.rps)).join(' / '), rs.map((x) => x.errors).join(' / '), ratio(rps[i]!, rps[0]!), ratio(rps[i]!, rps[1]!)];
    }),
  ),
);

await nginx.stop();
await ours.close();
await bare.close();
