// Replays the fuzzing campaign's inputs through the fuzz targets (fuzz/targets/*.ts): the
// committed seed corpora, and every input that once crashed a target (fuzz/regressions/<target>/,
// kept once fixed). Each must end in a result or a clean rejection, as `npm run fuzz` judges it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../../fuzz/fixtures.js';
import { loadTarget, TARGETS } from '../../fuzz/targets.js';

const root = repoRoot();
const files = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort().map((f) => join(dir, f)) : []);

for (const name of TARGETS) {
  t.test(name, async (t) => {
    const target = await loadTarget(name);
    await target.setup?.();
    t.teardown(() => target.teardown?.());
    const seeds = files(join(root, 'fuzz', 'corpus', name));
    t.ok(seeds.length > 0, 'has a seed corpus');
    for (const file of [...seeds, ...files(join(root, 'fuzz', 'regressions', name))]) {
      let outcome = 'accepted';
      try {
        await target.fuzz(readFileSync(file));
      } catch (e) {
        outcome = target.expected(e) ? 'rejected cleanly' : `crashed: ${e instanceof Error ? e.stack : String(e)}`;
      }
      t.notMatch(outcome, /^crashed/, `${file.slice(root.length + 1)}: ${outcome}`);
    }
  });
}
