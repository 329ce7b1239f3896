import pino, { type Logger } from 'pino';
import type { Config } from './config.js';

/** pino JSON logs on stdout; pretty on a terminal (or when configured). */
export function createLogger(c: Config): Logger {
  const pretty = c.log.pretty === 'true' || (c.log.pretty === 'auto' && process.stdout.isTTY === true);
  return pretty
    ? pino({ level: c.log.level, transport: { target: 'pino-pretty', options: { colorize: true, destination: 1 } } })
    : pino({ level: c.log.level });
}
