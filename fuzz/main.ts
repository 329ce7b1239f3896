// One target's campaign, in its own process (run.ts starts it with --import register.js):
//   node --import .fuzz-build/fuzz/register.js .fuzz-build/fuzz/main.js <target>
// Settings from the environment: FUZZ_RUNS, FUZZ_SEED, FUZZ_TIMEOUT_MS, FUZZ_RSS_MB.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEngine } from './engine.js';
import { loadTarget } from './targets.js';

const name = process.argv[2] ?? '';
const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
// .fuzz-build/fuzz/main.js → the repository root is two levels up.
const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const target = await loadTarget(name);
const result = await runEngine(target, {
  runs: env('FUZZ_RUNS', 100_000),
  seed: env('FUZZ_SEED', 1),
  timeoutMs: env('FUZZ_TIMEOUT_MS', 10_000),
  rssLimitMb: env('FUZZ_RSS_MB', 2048),
  maxCrashes: env('FUZZ_MAX_CRASHES', 10),
  seedDir: join(root, 'fuzz', 'corpus', name),
  workDir: join(root, 'fuzz', '.work', name),
  log: (line) => process.stderr.write(`[${name}] ${line}\n`),
});
process.stdout.write(`FUZZ-SUMMARY ${JSON.stringify(result)}\n`);
process.exit(0);
