import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { escapeHtml } from '../../../directory/http/apidocs.js';
import { deref, loadOpenApi, operations, type OpenApiParameter } from '../../../directory/http/openapi.js';
import { run } from '../../helpers.js';
import { get, memoryDirectory, startHttp } from './helpers.js';

// /openapi.yaml serves the description the routes are built from; /docs renders all of it on
// the server, with no script and nothing fetched from elsewhere.

const doc = loadOpenApi();
const { base } = await startHttp(t, await memoryDirectory());

t.test('/openapi.yaml is the YAML the server reads, as application/yaml', async (t) => {
  const r = await run('curl', ['-sf', '-D', '-', `${base}/openapi.yaml`]);
  const [head, body] = r.stdout.toString().split('\r\n\r\n');
  t.match(head, /^content-type: application\/yaml; charset=utf-8\r$/im);
  t.same(parseYaml(body!), doc, 'parses to the same document');
  t.ok(doc.paths['/openapi.yaml'] && doc.paths['/docs'], 'both routes are described in it');
});

t.test('/docs lists every path, method, parameter and response, with a strict CSP and no script', async (t) => {
  const r = await get(`${base}/docs`);
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^text\/html; charset=utf-8$/);
  t.match(r.headers['content-security-policy'], /^default-src 'none';/);
  const html = r.text;
  t.notMatch(html, /<script/i, 'no script');
  t.notMatch(html, /(src|href)="(https?:)?\/\//i, 'nothing from another origin');
  for (const { path, method, op } of operations(doc)) {
    const at = html.indexOf(`<section id="${op.operationId}">`);
    t.ok(at >= 0, `${method.toUpperCase()} ${path}: a section`);
    const section = html.slice(at, html.indexOf('</section>', at));
    t.match(section, `<span class="m">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code>`, `${op.operationId}: method and path`);
    for (const p of (op.parameters ?? []).map((x) => deref<OpenApiParameter>(doc, x))) t.match(section, `<code>${escapeHtml(p.name)}</code>`, `${op.operationId}: parameter ${p.name}`);
    for (const status of Object.keys(op.responses)) t.match(section, `<tr><td>${status}</td>`, `${op.operationId}: response ${status}`);
  }
});

t.test('text from the description is escaped', async (t) => {
  t.equal(escapeHtml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
});
