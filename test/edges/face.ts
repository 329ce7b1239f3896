/**
 * A child process serving one face on 127.0.0.1:0 for the flood tests (test/edges/helpers.ts):
 * `face.ts <ldap|http|smtp> <limits as JSON>`. It prints `{"port":N}` once listening; the parent
 * reads its RSS from /proc. Domains are added so every LDAP search has a few KB to answer.
 */
import { pino } from 'pino';
import { Metrics } from '../../directory/metrics.js';
import { memoryDirectory } from '../helpers.js';

const [face, limitsJson] = process.argv.slice(2);
const limits = JSON.parse(limitsJson ?? '{}') as Record<string, number>;
const logger = pino({ level: 'silent' });
const metrics = new Metrics();

async function start(): Promise<number> {
  if (face === 'ldap') {
    const directory = await memoryDirectory();
    for (const d of ['a.example', 'b.example', 'c.example']) await directory.addDomain(d);
    const { LdapServer } = await import('../../directory/ldap/ldap.js');
    const ldap = await LdapServer.create({ directory, logger, metrics, limits });
    return (await ldap.listen(0, '127.0.0.1')).port;
  }
  if (face === 'http') {
    const directory = await memoryDirectory();
    await directory.addDomain('a.example');
    const { createHttpServer } = await import('../../directory/http/http.js');
    const app = await createHttpServer({ directory, logger, metrics, config: { limits } as never });
    await app.listen({ host: '127.0.0.1', port: 0 });
    return (app.server.address() as { port: number }).port;
  }
  const { createGateway } = await import('../../gateway/smtp/smtp.js');
  const gw = await createGateway({
    listen: { host: '127.0.0.1', port: 0 },
    name: 'flood.test',
    ourDomains: ['example.org'],
    isInternal: [],
    route: () => [],
    process: async (m: Buffer) => m,
    metrics,
    edge: limits,
  } as never);
  return (await gw.listen()).port;
}

const port = await start();
process.stdout.write(JSON.stringify({ port }) + '\n');
