import t from 'tap';
import { floodNeverReading, rss, rssUnderFlood, settleRss, startFace } from '../../edges/helpers.js';
import { MAX_PIPELINED } from '../../../directory/http/limits.js';
import { run } from '../../helpers.js';

/** A pipelined GET of the domain's armored key (a few KB per answer), as a slow-read client sends it. */
const GET = Buffer.from('GET /v1/domains/a.example/openpgp HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n');
const curl = (port: number) => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/healthz`], { allowFail: true });

// The bound: Node reads no further pipelined request while a response waits (its outgoingData
// check), and the face closes a connection with more than MAX_PIPELINED responses waiting, so it
// holds one 64 KB read and at most that many responses; 32 MB over the idle RSS leaves room for
// V8's heap growth.
const BOUND_MB = 32;

t.test('HTTP: a client pipelining thousands of requests and never reading: closed once more than MAX_PIPELINED wait, RSS bounded', async (t) => {
  const { pid, port } = await startFace(t, 'http', { maxConnectionsPerAddress: 1, drainTimeoutMs: 600_000 });
  await curl(port); // warm up
  const idle = rss(pid).now;
  // The warm-up connection may still count for a moment: flood once the server answers 200.
  const HELLO = Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  let flood = await floodNeverReading(port, GET, 3 * 1024 * 1024, HELLO);
  for (let i = 0; i < 20 && !flood.answer.startsWith('HTTP/1.1 200'); i++) {
    flood.socket.destroy();
    flood = await floodNeverReading(port, GET, 3 * 1024 * 1024, HELLO);
  }
  t.teardown(() => void flood.socket.destroy());
  // Node answers every request of a read it parsed; past MAX_PIPELINED waiting responses the face
  // closes the connection (the drain timeout, 10 minutes here, is longer than the test may run).
  await flood.closed;
  t.pass(`the server closed the client with more than ${MAX_PIPELINED} responses waiting`);
  const during = await rssUnderFlood(pid, idle, BOUND_MB);
  t.ok(during.settled, `RSS settled ${during.grown.toFixed(0)} MB over idle ${idle.toFixed(0)} MB (bound ${BOUND_MB} MB)`);
  let r = await curl(port);
  for (let i = 0; i < 100 && r.stdout.toString() !== '200'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    r = await curl(port);
  }
  t.equal(r.stdout.toString(), '200', 'its slot is free again');
  const after = await settleRss(pid, idle, 24);
  t.ok(after - idle < 24, `RSS back near idle after close: ${after.toFixed(0)} MB`);
});
