// `npm run fuzz [-- target ...]`: every fuzz target (or the named ones), one after the other,
// each in its own process for FUZZ_RUNS executions (default 100000). Prints per target:
// executions, coverage (counters reached / counters, features), corpus, crashes; exits 1 when
// a target crashed, hung or blew up. Findings are kept under fuzz/.work/<target>/crashes.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineResult } from './engine.js';
import { TARGETS } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(dirname(here));
const names = process.argv.slice(2).length ? process.argv.slice(2) : [...TARGETS];

interface Row {
  target: string;
  result?: EngineResult;
  finding?: { kind: string; detail: string; file: string };
  exit: number | null;
}

function runOne(name: string): Promise<Row> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--max-old-space-size=4096', '--import', join(here, 'register.js'), join(here, 'main.js'), name], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const row: Row = { target: name, exit: null };
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d.toString().split('\n').filter((l) => l && !l.startsWith('FUZZ-')).map((l) => `${l}\n`).join(''));
    });
    child.on('close', (code) => {
      for (const line of out.split('\n')) {
        if (line.startsWith('FUZZ-SUMMARY ')) row.result = JSON.parse(line.slice(13)) as EngineResult;
        if (line.startsWith('FUZZ-FINDING ')) row.finding = JSON.parse(line.slice(13)) as Row['finding'];
      }
      row.exit = code;
      resolve(row);
    });
  });
}

const rows: Row[] = [];
for (const name of names) {
  process.stderr.write(`\n=== fuzz target ${name} ===\n`);
  rows.push(await runOne(name));
}

const table = [['target', 'executions', 'seconds', 'exec/s', 'cov (counters)', 'features', 'corpus', 'rejected', 'crashes'].join('\t')];
let bad = 0;
for (const r of rows) {
  const x = r.result;
  if (!x) {
    bad++;
    table.push([r.target, '-', '-', '-', '-', '-', '-', '-', r.finding ? `${r.finding.kind}: ${r.finding.file}` : `died (exit ${r.exit})`].join('\t'));
    continue;
  }
  if (x.crashes.length) bad++;
  table.push([x.target, x.executions, x.seconds, Math.round(x.executions / Math.max(x.seconds, 0.1)), `${x.covered}/${x.counters}`, x.features, x.corpus, x.rejected, x.crashes.length].join('\t'));
}
process.stdout.write(`\n${table.join('\n')}\n`);
mkdirSync(join(root, 'fuzz', '.work'), { recursive: true });
writeFileSync(join(root, 'fuzz', '.work', 'summary.json'), JSON.stringify(rows, null, 2));
for (const r of rows) for (const c of r.result?.crashes ?? []) process.stdout.write(`\n${r.target}: ${c.key}\n  input: ${c.file}\n`);
process.exit(bad ? 1 : 0);
