import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Directory } from '../directory/directory.js';
import { createHttpServer } from '../directory/http/http.js';
import { loadMasterKey } from '../directory/seal.js';
import { openStore } from '../directory/store/open.js';
import type { Config } from './config.js';

/** The composition root: the only place that wires stores, the directory and its faces. */
export async function openDirectory(c: Config, opts: { createKey: boolean }): Promise<Directory> {
  // Read (or create) the key before the store, so a wrong key touches nothing.
  const masterKey = loadMasterKey({ value: c.masterKey.value, file: c.masterKey.file, create: opts.createKey });
  const store = await openStore(c.store.url, { redisPrefix: c.store.redisPrefix });
  try {
    return await Directory.open(store, masterKey, { keys: c.keys });
  } catch (e) {
    await store.close();
    throw e;
  }
}

export interface Running {
  directory: Directory;
  http?: FastifyInstance;
  /** host:port of each listener that is up. */
  addresses: Record<string, string>;
  close(): Promise<void>;
}

function hostPort(a: AddressInfo | string | null): string {
  if (!a || typeof a === 'string') return String(a);
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** `mailmesh serve`: the store, the demo domain on first start, and every enabled face. */
export async function serve(c: Config, log: Logger): Promise<Running> {
  const directory = await openDirectory(c, { createKey: true });
  const closers: (() => Promise<void>)[] = [() => directory.store.close()];
  const running: Running = {
    directory,
    addresses: {},
    async close() {
      for (const f of closers.reverse()) await f().catch((err) => log.error({ err }, 'shutdown step failed'));
    },
  };
  try {
    if (c.demo.domain && !(await directory.findRecord(c.demo.domain))) {
      const r = await directory.addDomain(c.demo.domain);
      log.info({ domain: r.domain, openpgp: r.keys.openpgp?.fingerprint, smime: r.keys.smime?.fingerprint }, 'demo domain created');
    }
    if (c.http.enabled) {
      const http = await createHttpServer({ directory, logger: log.child({ face: 'http' }) });
      await http.listen({ host: c.http.host, port: c.http.port });
      closers.push(() => http.close());
      running.http = http;
      running.addresses.http = hostPort(http.server.address());
    }
    log.info({ addresses: running.addresses, store: directory.store.kind }, 'mailmesh is serving');
    return running;
  } catch (e) {
    await running.close();
    throw e;
  }
}
