import { serve, type Running } from './app.js';
import type { Config } from './config.js';
import { EXIT } from './exit.js';
import { createLogger } from './log.js';

/**
 * `mailmesh serve` as a supervised process (docs/operations.md "Signals"): SIGHUP reloads TLS and
 * the policy (one that arrives while starting — a migration lease can take minutes — is held and
 * applied once serving; an invalid configuration is refused and the old stays); SIGTERM/SIGINT
 * drain SMTP (smtp.drainSec), then stop the rest: exit 0 when clean, 70 when a step failed.
 */
export async function serveSupervised(config: () => Config): Promise<void> {
  const c = config();
  const log = createLogger(c);
  const state: { running?: Running; heldReload: boolean; stopping: boolean } = { heldReload: false, stopping: false };
  const reloadNow = (r: Running) =>
    Promise.resolve()
      .then(() => r.reload(config()))
      .catch((err: unknown) => log.error({ err }, 'reload refused; the running configuration stays'));
  process.on('SIGHUP', () => {
    if (state.running) void reloadNow(state.running);
    else state.heldReload = true;
  });
  const running = await serve(c, log);
  state.running = running;
  if (state.heldReload) void reloadNow(running);
  const stop = (signal: string) => {
    if (state.stopping) return;
    state.stopping = true;
    log.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(EXIT.OK),
      () => process.exit(EXIT.SOFTWARE),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
