import net from 'node:net';
import t from 'tap';
import { BODY_LIMIT } from '../../../directory/http/http.js';
import { memoryDirectory, startHttp } from './helpers.js';

// RFC 9110 §10.1.1: a client that asks for 100-continue before a body larger than any route takes
// is told 413 at once (and sends nothing); a body within the limit still gets 100 Continue.

/** Sends only the request header and returns the first response the server writes. */
async function firstResponse(port: number, length: number): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => s.destroy());
  s.write(`POST /v1/imports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`);
  let got = '';
  for await (const chunk of s) {
    got += (chunk as Buffer).toString('latin1');
    if (got.includes('\r\n\r\n')) break;
  }
  return got;
}

t.test('Expect: 100-continue with a body larger than any route takes gets 413, not 100', async (t) => {
  const { port } = await startHttp(t, await memoryDirectory());
  const big = await firstResponse(port, 40 * 2 ** 20);
  t.match(big, /^HTTP\/1\.1 413 /, 'refused before the body');
  t.match(big, /connection: close/i);
  t.match(await firstResponse(port, BODY_LIMIT), /^HTTP\/1\.1 100 Continue/, 'a body within the limit is asked for');
});

t.test('the largest webmail body counts: within it, 100 Continue', async (t) => {
  const { port } = await startHttp(t, await memoryDirectory(), undefined, { webmail: { handlers: {}, register: () => undefined, bodyLimit: 8 * 2 ** 20 } });
  t.match(await firstResponse(port, 4 * 2 ** 20), /^HTTP\/1\.1 100 Continue/);
  t.match(await firstResponse(port, 9 * 2 ** 20), /^HTTP\/1\.1 413 /);
});
