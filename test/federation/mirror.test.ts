import http from 'node:http';
import t from 'tap';
import { Mirror } from '../../federation/mirror.js';
import { startHttp } from '../directory/http/helpers.js';
import { memoryDirectory } from './helpers.js';

// Directory A serves its records; B mirrors A through a proxy that alters one record in transit.
const a = await memoryDirectory();
const one = await a.addDomain('one.test', { gateways: { smtp: ['mx.one.test:25'] } });
const two = await a.addDomain('two.test', { gateways: { smtp: ['mx.two.test:25'] } });
const { base: urlA } = await startHttp(t, a);

let tamper = true;
const proxy = http.createServer((req, res) => {
  fetch(urlA + req.url).then(async (r) => {
    let text = await r.text();
    // In transit: the gateway of two.test inside its signed payload is redirected.
    if (tamper) text = text.replaceAll('mx.two.test:25', 'mx.evil.test:25');
    res.writeHead(r.status, { 'content-type': 'application/json' }).end(text);
  }, () => res.writeHead(502).end());
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
t.teardown(() => proxy.close());
const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

t.test('B mirrors A, verifying every signature; an altered record is refused', async (t) => {
  const b = await memoryDirectory();
  const m = new Mirror(proxyUrl, { directory: b, pageSize: 1 });
  const r = await m.sync();
  t.same(r.stored, ['one.test']);
  t.same(r.refused.map((x) => [x.domain, x.code]), [['two.test', 'SIGNATURE_INVALID']]);
  const got = await b.getRecord('one.test');
  t.equal(got.provenance.source, 'mirrored');
  t.equal(got.provenance.origin, proxyUrl);
  t.equal(got.keys.openpgp?.fingerprint, one.keys.openpgp!.fingerprint);
  t.equal(got.signed?.payload, one.signed!.payload, 'the signed record travels unchanged');
  t.equal(await b.findRecord('two.test'), undefined);

  // Honest transport: the next full sync stores two.test; a removal at A removes the copy.
  tamper = false;
  const clean = new Mirror(proxyUrl, { directory: b });
  t.same((await clean.sync()).stored, ['two.test']);
  t.same((await b.getRecord('two.test')).gateways, two.gateways);
  t.same((await clean.sync()).stored, [], 'nothing new');
  await a.removeDomain('two.test');
  t.same((await clean.sync()).removed, ['two.test']);
  t.equal(await b.findRecord('two.test'), undefined);

  // A local domain of B with the same name is never overwritten by a mirror.
  const c = await memoryDirectory();
  const own = await c.addDomain('one.test');
  const r2 = await new Mirror(urlA, { directory: c }).sync();
  t.same(r2.stored, []);
  t.equal((await c.getRecord('one.test')).keys.openpgp?.fingerprint, own.keys.openpgp!.fingerprint);
});
