// The engine's watchdog, in a worker thread: the main thread may be stuck in a synchronous
// loop, so hangs and memory blow-ups are seen from here. It reads the input under test from
// shared memory, writes it out as a finding and kills the process.
import { writeFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

interface WatchdogData {
  shared: SharedArrayBuffer;
  timeoutMs: number;
  rssLimitMb: number;
  outDir: string;
}

const { shared, timeoutMs, rssLimitMb, outDir } = workerData as WatchdogData;
const state = new Int32Array(shared, 0, 2); // [inputs started, length of the current input]
const bytes = new Uint8Array(shared, 8);
let last = -1;
let since = Date.now();

function finding(kind: 'hang' | 'oom', detail: string): never {
  const input = Buffer.from(bytes.subarray(0, Atomics.load(state, 1)));
  const file = `${outDir}/${kind}-${Date.now()}`;
  writeFileSync(file, input);
  process.stderr.write(`\n==fuzz== ${kind.toUpperCase()}: ${detail}; input (${input.length} bytes) written to ${file}\n`);
  process.stdout.write(`FUZZ-FINDING ${JSON.stringify({ kind, detail, file })}\n`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

setInterval(() => {
  const n = Atomics.load(state, 0);
  const now = Date.now();
  if (n !== last) {
    last = n;
    since = now;
  } else if (n > 0 && now - since > timeoutMs) {
    finding('hang', `one input ran longer than ${timeoutMs} ms`);
  }
  const rssMb = process.memoryUsage.rss() / 2 ** 20;
  if (rssMb > rssLimitMb) finding('oom', `RSS ${Math.round(rssMb)} MiB is above ${rssLimitMb} MiB`);
}, 200);
