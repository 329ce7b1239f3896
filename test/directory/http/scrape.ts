import { pino } from 'pino';
import type { Test } from 'tap';
import { serve, type Running } from '../../../cli/app.js';
import { loadConfig } from '../../../cli/config.js';
import { tempDir } from '../../helpers.js';
import { get } from './helpers.js';

/** `mailmesh serve` in this process with every face on port 0 and a memory store, and a strict reader of its /metrics. */
export async function start(t: Test, env: Record<string, string> = {}): Promise<Running> {
  const faces = Object.fromEntries(['HTTP', 'DNS', 'LDAP', 'SMTP'].map((f) => [`MAILMESH_${f}__PORT`, '0']));
  const c = loadConfig({ env: { MAILMESH_STORE__URL: 'memory:', ...faces, ...env }, cwd: tempDir(t) });
  const running = await serve(c, pino({ level: 'silent' }));
  t.teardown(() => running.close());
  return running;
}

export const hostPort = (a: string) => {
  const [host, port] = a.split(/:(?=\d+$)/);
  return { host: host!, port: port! };
};

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The text exposition format 0.0.4, read strictly: every line is a HELP, a TYPE or a sample of
 * the family announced before it; label values quoted with \\, \" and \n escapes only. A value is
 * a float, ±Inf or NaN (prom-client writes `Nan` for an empty event-loop histogram; Prometheus reads
 * it, as Go's ParseFloat ignores case).
 */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? ([+-]?(?:[0-9.e+-]+|Inf|[Nn]a[Nn]))(?: -?\\d+)?$`);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(meta[3]!)) throw new Error(`bad TYPE line: ${line}`);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const family = [...types.keys()].find((f) => m[1] === f || /_(bucket|sum|count|total|created)$/.test(m[1]!) && m[1]!.startsWith(f));
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

export async function scrape(base: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  const r = await get(`${base}/metrics`, { headers });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseExposition(r.text).samples;
}

/** Sum of the samples of `name` whose labels include `labels`. */
export function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

