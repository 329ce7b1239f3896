import { readFileSync } from 'node:fs';
import { edgeLimits, type EdgeSettings } from '../../directory/edge.js';
import { MailmeshError } from '../errors.js';
import type { TlsPolicy } from './client.js';
import { createRouter, type NextHop } from './route.js';
import type { GatewayOptions } from './smtp.js';

/** The `smtp` section of the configuration (cli/config.ts; docs/smtp.md "Configuration"). */
export interface SmtpSettings extends EdgeSettings {
  host: string;
  port: number;
  name?: string;
  ourDomains: string[];
  internalNetworks: string[];
  internalServer: string;
  smarthost?: string;
  nextHopTls: TlsPolicy;
  mxPort: number;
  tlsCert?: string;
  tlsKey?: string;
  maxMessageBytes: number;
  maxConnections: number;
  maxRecipients: number;
  nextHopTimeoutSec: number;
  dataTimeoutSec: number;
  processTimeoutSec: number;
  idleTimeoutSec: number;
  maxCommandLineBytes: number;
  /** SIGTERM: how long a message in DATA gets to finish. */
  drainSec?: number;
}

/** "host:port" or "[v6]:port" as a next hop. */
export function parseHostPort(text: string, tls: TlsPolicy): NextHop {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new MailmeshError('CONFIG_INVALID', `not host:port: ${JSON.stringify(text)}`);
  return { host: (m[1] ?? m[2])!, port, tls };
}

/** Gateway options from the settings; the caller adds `process` and `logger`. */
export function gatewayOptions(s: SmtpSettings): Omit<GatewayOptions, 'process' | 'logger'> {
  if ((s.tlsCert === undefined) !== (s.tlsKey === undefined)) throw new MailmeshError('CONFIG_INVALID', 'smtp.tlsCert and smtp.tlsKey go together');
  const file = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      throw new MailmeshError('CONFIG_INVALID', `${f}: ${(e as Error).message}`);
    }
  };
  return {
    listen: { host: s.host, port: s.port },
    name: s.name,
    ourDomains: s.ourDomains,
    isInternal: s.internalNetworks,
    route: createRouter({
      internal: parseHostPort(s.internalServer, s.nextHopTls),
      smarthost: s.smarthost ? parseHostPort(s.smarthost, s.nextHopTls) : undefined,
      mxPort: s.mxPort,
      mxTls: s.nextHopTls,
    }),
    tls: s.tlsCert && s.tlsKey ? { cert: file(s.tlsCert), key: file(s.tlsKey) } : undefined,
    limits: { size: s.maxMessageBytes, connections: s.maxConnections, recipients: s.maxRecipients },
    timeouts: {
      command: s.nextHopTimeoutSec * 1000, connect: s.nextHopTimeoutSec * 1000, dataEnd: s.dataTimeoutSec * 1000, process: s.processTimeoutSec * 1000, idle: s.idleTimeoutSec * 1000, shutdown: (s.drainSec ?? 30) * 1000,
    },
    edge: edgeLimits(s),
    maxCommandLineBytes: s.maxCommandLineBytes,
  };
}
