// A coverage-guided mutational fuzzing loop (the libFuzzer model): inputs that reach new
// coverage features join the corpus and are mutated further. Coverage comes from the istanbul
// counters that hooks.ts puts into the product's modules; a feature is a counter (statement,
// branch arm, function) with its hit count in a power-of-two bucket, as libFuzzer counts edges.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { COVERAGE_VARIABLE } from './hooks.js';
import { mutate, rng } from './mutate.js';
import type { FuzzTarget } from './target.js';

export interface EngineOptions {
  runs: number;
  seed: number;
  timeoutMs: number;
  rssLimitMb: number;
  /** Committed seed inputs (fuzz/corpus/<target>). */
  seedDir: string;
  /** Where new corpus inputs and findings go (fuzz/.work/<target>). */
  workDir: string;
  /** Stop after this many distinct crashes. */
  maxCrashes: number;
  log(line: string): void;
}

export interface Crash {
  key: string;
  file: string;
  error: string;
}

export interface EngineResult {
  target: string;
  executions: number;
  seconds: number;
  /** Counters (statements, branch arms, functions) reached at least once / all counters of the loaded product modules. */
  covered: number;
  counters: number;
  /** Distinct (counter, hit-count bucket) features. */
  features: number;
  corpus: number;
  rejected: number;
  crashes: Crash[];
}

type Counters = Record<string, number | number[]>;
interface FileCoverage {
  s: Counters;
  f: Counters;
  b: Counters;
}

/** libFuzzer's hit-count buckets: 1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+. */
function bucket(n: number): number {
  return n < 4 ? n - 1 : n < 8 ? 3 : n < 16 ? 4 : n < 32 ? 5 : n < 128 ? 6 : 7;
}

class Coverage {
  #files = 0;
  /** Per counter: its object and key (branch arms are array elements). */
  #objs: (Counters | number[])[] = [];
  #keys: (string | number)[] = [];
  #seen = new Uint8Array(0);
  #everHit = new Uint8Array(0);
  covered = 0;
  features = 0;

  get counters(): number {
    return this.#objs.length;
  }

  #refresh(all: Record<string, FileCoverage>): void {
    const names = Object.keys(all);
    if (names.length === this.#files) return;
    this.#files = names.length;
    const objs: (Counters | number[])[] = [];
    const keys: (string | number)[] = [];
    for (const name of names.sort()) {
      const fc = all[name]!;
      const add = (o: Counters | number[], k: string | number) => {
        objs.push(o);
        keys.push(k);
      };
      for (const k of Object.keys(fc.s)) add(fc.s, k);
      for (const k of Object.keys(fc.f)) add(fc.f, k);
      for (const k of Object.keys(fc.b)) {
        const arms = fc.b[k] as number[];
        for (let i = 0; i < arms.length; i++) add(arms, i);
      }
    }
    // Counters keep their place when a new module loads: files are added, never removed, but
    // sorting may shift them; re-derive the seen-sets from scratch (a rare event).
    this.#objs = objs;
    this.#keys = keys;
    this.#seen = new Uint8Array(objs.length);
    this.#everHit = new Uint8Array(objs.length);
    this.covered = 0;
    this.features = 0;
  }

  /** Forgets what was seen so far (what setup reached is not the inputs' coverage). */
  reset(): void {
    this.collect();
    this.#seen.fill(0);
    this.#everHit.fill(0);
    this.covered = 0;
    this.features = 0;
  }

  /** Reads and clears the counters; returns how many new features this input reached. */
  collect(): number {
    const all = (globalThis as Record<string, unknown>)[COVERAGE_VARIABLE] as Record<string, FileCoverage> | undefined;
    if (!all) return 0;
    this.#refresh(all);
    let fresh = 0;
    const objs = this.#objs;
    const keys = this.#keys;
    for (let i = 0; i < objs.length; i++) {
      const o = objs[i] as Record<string | number, number>;
      const k = keys[i]!;
      const v = o[k]!;
      if (v === 0) continue;
      o[k] = 0;
      const bit = 1 << bucket(v);
      if (!(this.#seen[i]! & bit)) {
        this.#seen[i]! |= bit;
        fresh++;
        this.features++;
        if (!this.#everHit[i]) {
          this.#everHit[i] = 1;
          this.covered++;
        }
      }
    }
    return fresh;
  }
}

/** The first line of the message (numbers masked) and the first stack frame of ours: one key per distinct bug. */
function crashKey(e: unknown): string {
  if (!(e instanceof Error)) return `non-Error ${typeof e}`;
  const frame = (e.stack ?? '').split('\n').find((l) => /\/(directory|gateway|federation)\//.test(l)) ?? '';
  return `${e.name}: ${e.message.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 120)} @ ${frame.trim().replace(/:\d+:\d+\)?$/, '')}`;
}

function describe(e: unknown): string {
  return e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
}

export async function runEngine(target: FuzzTarget, o: EngineOptions): Promise<EngineResult> {
  const maxLen = target.maxLen ?? 4096;
  const corpusDir = join(o.workDir, 'corpus');
  const crashDir = join(o.workDir, 'crashes');
  mkdirSync(corpusDir, { recursive: true });
  mkdirSync(crashDir, { recursive: true });
  const r = rng(o.seed);
  const dictionary = (target.dictionary ?? []).map((d) => (typeof d === 'string' ? Buffer.from(d, 'latin1') : d));

  const shared = new SharedArrayBuffer(8 + maxLen);
  const state = new Int32Array(shared, 0, 2);
  const bytes = new Uint8Array(shared, 8);
  const watchdog = new Worker(new URL('./watchdog.js', import.meta.url), { workerData: { shared, timeoutMs: o.timeoutMs, rssLimitMb: o.rssLimitMb, outDir: crashDir } });
  watchdog.unref();

  await target.setup?.();
  const cov = new Coverage();
  cov.reset();

  const corpus: Buffer[] = [];
  const crashes: Crash[] = [];
  const keys = new Set<string>();
  let executions = 0;
  let rejected = 0;

  const execute = async (input: Buffer): Promise<number> => {
    bytes.set(input.subarray(0, maxLen));
    Atomics.store(state, 1, Math.min(input.length, maxLen));
    Atomics.add(state, 0, 1);
    executions++;
    try {
      const p = target.fuzz(input);
      if (p) await p;
    } catch (e) {
      if (target.expected(e)) {
        rejected++;
      } else {
        const key = crashKey(e);
        if (!keys.has(key)) {
          keys.add(key);
          const file = join(crashDir, `crash-${createHash('sha1').update(input).digest('hex')}`);
          writeFileSync(file, input);
          crashes.push({ key, file, error: describe(e) });
          o.log(`==fuzz== CRASH #${crashes.length} in ${target.name}: ${key}\n${describe(e)}\ninput (${input.length} bytes): ${file}`);
        }
      }
    }
    return cov.collect();
  };

  const keep = (input: Buffer) => {
    corpus.push(input);
    writeFileSync(join(corpusDir, createHash('sha1').update(input).digest('hex')), input);
  };

  // Seeds first (the committed corpus, then what earlier campaigns kept); every seed stays.
  const seedFiles = [o.seedDir, corpusDir].flatMap((d) => {
    try {
      return readdirSync(d).sort().map((f) => join(d, f));
    } catch {
      return [];
    }
  });
  for (const f of seedFiles) {
    const input = readFileSync(f).subarray(0, maxLen);
    await execute(input);
    corpus.push(input);
  }
  if (corpus.length === 0) keep(Buffer.alloc(0));

  const started = Date.now();
  let lastReport = started;
  while (executions < o.runs && crashes.length < o.maxCrashes) {
    // Newer inputs (those that found something last) are picked a little more often.
    const i = r() < 0.5 ? corpus.length - 1 - Math.floor(r() * Math.min(corpus.length, 16)) : Math.floor(r() * corpus.length);
    const input = mutate(corpus[i]!, r, maxLen, dictionary, corpus);
    if ((await execute(input)) > 0) keep(input);
    const now = Date.now();
    if (now - lastReport > 10_000) {
      lastReport = now;
      o.log(`#${executions}\tcov: ${cov.covered}/${cov.counters}\tft: ${cov.features}\tcorp: ${corpus.length}\texec/s: ${Math.round(executions / ((now - started) / 1000))}\tcrashes: ${crashes.length}`);
    }
  }
  return {
    target: target.name,
    executions,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    covered: cov.covered,
    counters: cov.counters,
    features: cov.features,
    corpus: corpus.length,
    rejected,
    crashes,
  };
}
