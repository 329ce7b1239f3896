import { fstatSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

/**
 * sd-daemon(3) priorities (syslog levels) of pino's levels: fatal 2 (crit), error 3, warn 4,
 * info 6, debug and trace 7. journald reads a `<N>` line prefix as the line's priority.
 */
const PRIORITY: Record<number, number> = { 60: 2, 50: 3, 40: 4, 30: 6, 20: 7, 10: 7 };

/** A pino line (`{"level":30,…}`) with its sd-daemon(3) `<N>` prefix. */
export function journalLine(line: string): string {
  const level = /^\{"level":(\d+)/.exec(line)?.[1];
  return `<${PRIORITY[Number(level)] ?? 6}>${line}`;
}

/** Whether stdout is the journal's stream: systemd sets JOURNAL_STREAM to its `device:inode` (systemd.exec(5)). */
export function stdoutIsJournal(env: NodeJS.ProcessEnv, fd = 1): boolean {
  const [dev, ino] = (env.JOURNAL_STREAM ?? '').split(':');
  if (!dev || !ino) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

/**
 * The process's logger (docs/observability.md "Logs"): pino JSON lines on stdout; pretty on a
 * terminal (log.pretty); with log.format `journal` (or `auto` under systemd with stdout on the
 * journal) each JSON line carries its sd-daemon(3) priority prefix, so `journalctl -p warning` works.
 */
export function createLogger(c: Config, o: { env?: NodeJS.ProcessEnv; destination?: DestinationStream } = {}): Logger {
  const env = o.env ?? process.env;
  const journal = c.log.format === 'journal' || (c.log.format === 'auto' && stdoutIsJournal(env));
  const pretty = !journal && (c.log.pretty === 'true' || (c.log.pretty === 'auto' && process.stdout.isTTY === true && !o.destination));
  if (pretty) return pino({ level: c.log.level, transport: { target: 'pino-pretty', options: { colorize: true, destination: 1 } } });
  const out = o.destination ?? pino.destination({ dest: 1, sync: true });
  return pino({ level: c.log.level }, journal ? { write: (line: string) => out.write(journalLine(line)) } : out);
}
