import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import t, { type Test } from 'tap';
import {
  deref,
  loadOpenApi,
  operations,
  type OpenApiOperation,
  type OpenApiParameter,
  type OpenApiResponse,
} from '../../../directory/http/openapi.js';
import { caKeyId, readCertificates } from '../../../directory/smime.js';
import { announceForTest } from '../announced.js';
import { get, memoryDirectory, startHttp, type Got } from './helpers.js';

// Every path and method of openapi.yaml is called on a real server with the documented example
// parameters; the status must be documented and a JSON body must match the documented schema.
const doc = loadOpenApi();
// With a transparency log: its routes (/log/…, /v1/log…) answer, and the record carries `transparency`.
const directory = await memoryDirectory(undefined, { log: { origin: 'dir.mailmesh.test/log' } });
const demo = await directory.addDomain('demo.mailmesh.test');
// In a roll, with a CRL: the record carries next, rollover and crls, and /crl (and /crl/{caKeyId}) has something to serve.
await announceForTest(directory, 'demo.mailmesh.test');
// The ACME http-01 route answers its example token as a pending challenge would (test/acme/ orders for real).
const { base } = await startHttp(t, directory, undefined, { acme: { httpAnswer: (token) => (token.startsWith('evaGxf') ? `${token}.thumbprint` : undefined) } });

// Examples that cannot be fixed in the file: the demo key is generated at test time.
const LIVE: Record<string, string> = {
  fingerprint: demo.keys.openpgp!.fingerprint,
  keyid: demo.keys.openpgp!.keyId,
  caKeyId: await caKeyId(readCertificates(demo.keys.smime!.chain[1]!)[0]!),
};

const example = (p: OpenApiParameter) => (p.in === 'path' && LIVE[p.name]) || String(p.example);

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = addFormats(new Ajv2020({ strict: true, allErrors: true }));
ajv.addKeyword('example');
// OpenAPI 3.1 schemas are JSON Schema 2020-12; `#/components/schemas/X` becomes `#/$defs/X`.
const defs = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('#/components/schemas/', '#/$defs/')) as Record<string, unknown>;
function validator(schema: Record<string, unknown>) {
  const rewritten = JSON.parse(JSON.stringify(schema).replaceAll('#/components/schemas/', '#/$defs/')) as Record<string, unknown>;
  return ajv.compile({ ...rewritten, $defs: defs });
}

function request(path: string, op: OpenApiOperation, value: (p: OpenApiParameter) => string) {
  const params = (op.parameters ?? []).map((p) => deref<OpenApiParameter>(doc, p));
  let url = path;
  const query = new URLSearchParams();
  const headers: Record<string, string> = {};
  for (const p of params) {
    const v = value(p);
    if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(v));
    else if (p.in === 'query') query.set(p.name, v);
    else headers[p.name.toLowerCase()] = v;
  }
  return { url: `${url}${query.size ? '?' + query : ''}`, headers, params };
}

/** The status is documented; a JSON body matches its schema; another body has a documented media type. */
function checkResponse(t: Test, label: string, op: OpenApiOperation, method: string, r: Got) {
  const documented = op.responses[String(r.status)];
  if (!documented) return t.fail(`${label}: status ${r.status} is not documented (${r.text.slice(0, 200)})`);
  const response = deref<OpenApiResponse>(doc, documented);
  if (method === 'head') return t.equal(r.body.length, 0, `${label}: HEAD has no body`);
  const type = String(r.headers['content-type'] ?? '').split(';')[0]!;
  const media = response.content?.[type];
  if (!media) return t.fail(`${label}: ${r.status} answered ${type}, documented: ${Object.keys(response.content ?? {}).join(', ')}`);
  if (type !== 'application/json') return t.pass(`${label}: ${r.status} ${type}`);
  const validate = validator(media.schema!);
  t.ok(validate(r.json()), `${label}: ${r.status} body matches the schema ${JSON.stringify(validate.errors ?? '')}`);
}

const all = [...operations(doc)];

t.test('openapi.yaml has unique operationIds and an example for every parameter', async (t) => {
  t.equal(new Set(all.map((o) => o.op.operationId)).size, all.length);
  for (const { path, method, op } of all) {
    for (const p of (op.parameters ?? []).map((x) => deref<OpenApiParameter>(doc, x))) {
      t.not(p.example, undefined, `${method.toUpperCase()} ${path} ${p.name}`);
    }
  }
});

t.test('every operation answers its examples with a documented 200', async (t) => {
  // Operations with a request body (join, leave, import) are called with bodies in test/federation/;
  // those that need a bearer token (`security`) with one in their own tests (test/gateway/webmail/admin.test.ts).
  for (const { path, method, op } of all.filter((o) => !o.op.requestBody && !o.op.security)) {
    const { url, headers } = request(path, op, example);
    const r = await get(base + url, { method: method.toUpperCase(), headers });
    const label = `${method.toUpperCase()} ${url}`;
    t.equal(r.status, 200, label);
    checkResponse(t, label, op, method, r);
  }
});

t.test('every operation with parameters answers a malformed one with a documented 400 and an Error body', async (t) => {
  for (const { path, method, op } of all.filter((o) => o.op.parameters?.length)) {
    const { url, headers } = request(path, op, () => 'x!');
    const r = await get(base + url, { method: method.toUpperCase(), headers });
    const label = `${method.toUpperCase()} ${url}`;
    t.equal(r.status, 400, label);
    checkResponse(t, label, op, method, r);
  }
});

t.test('over the rate limit every operation but /healthz and /metrics answers a documented 429', async (t) => {
  const limited = await startHttp(t, directory, { rateLimit: { max: 1, windowSec: 600 } });
  await get(`${limited.base}/v1/domains`);
  for (const { path, method, op } of all) {
    const { url, headers } = request(path, op, example);
    const r = await get(limited.base + url, { method: method.toUpperCase(), headers });
    const label = `${method.toUpperCase()} ${url}`;
    t.equal(r.status, ['/healthz', '/metrics'].includes(path) ? 200 : 429, label);
    checkResponse(t, label, op, method, r);
  }
});
