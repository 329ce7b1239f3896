// ESM loader hooks (Node module.register): instruments the product's compiled modules with
// istanbul counters so that the fuzzing engine (engine.ts) sees which statements, branches and
// functions each input reached. Libraries under node_modules are not instrumented.
import { fileURLToPath } from 'node:url';
import istanbul from 'istanbul-lib-instrument';

export const COVERAGE_VARIABLE = '__mailmeshFuzzCoverage';

let roots: string[] = [];
const instrumenter = istanbul.createInstrumenter({ coverageVariable: COVERAGE_VARIABLE, esModules: true, compact: true, produceSourceMap: false });

export function initialize(data: { roots: string[] }): void {
  roots = data.roots;
}

type LoadResult = { format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean };

export async function load(url: string, context: object, nextLoad: (url: string, context: object) => Promise<LoadResult>): Promise<LoadResult> {
  const result = await nextLoad(url, context);
  if (result.format !== 'module' || !result.source || !url.startsWith('file:')) return result;
  const file = fileURLToPath(url);
  if (!roots.some((r) => file.startsWith(r)) || file.includes('/node_modules/')) return result;
  const source = typeof result.source === 'string' ? result.source : Buffer.from(result.source as Uint8Array).toString('utf8');
  return { ...result, source: instrumenter.instrumentSync(source, file) };
}
