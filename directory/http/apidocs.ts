import { deref, operations, type OpenApiDocument, type OpenApiOperation, type OpenApiParameter, type OpenApiResponse } from './openapi.js';

/**
 * The reference page served at /docs: openapi.yaml rendered on the server as one HTML page,
 * every path and method with its parameters and responses. No script and nothing fetched from
 * elsewhere (its Content-Security-Policy allows only its own inline style).
 */

/** HTML text escaping (HTML Living Standard §13.1.2.6: the five characters that may end text or an attribute). */
export function escapeHtml(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

type Info = { title?: string; version?: string; description?: string };

/** A schema in one line: its $ref name, or its type with pattern, bounds and enum. */
function schemaText(schema: Record<string, unknown> | undefined): string {
  if (!schema) return '';
  if (typeof schema.$ref === 'string') return schema.$ref.split('/').pop()!;
  const parts = [schema.type ?? (schema.enum ? 'enum' : 'any')];
  if (schema.enum) parts.push(`one of ${(schema.enum as unknown[]).join(', ')}`);
  if (schema.pattern) parts.push(`pattern ${String(schema.pattern)}`);
  for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'default']) if (schema[k] !== undefined) parts.push(`${k} ${String(schema[k])}`);
  return parts.join('; ');
}

function parametersTable(doc: OpenApiDocument, op: OpenApiOperation): string {
  const params = (op.parameters ?? []).map((p) => deref<OpenApiParameter & { description?: string }>(doc, p));
  if (params.length === 0) return '<p class="none">No parameters.</p>';
  const rows = params.map((p) =>
    `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${escapeHtml(p.in)}</td><td>${p.required ? 'yes' : 'no'}</td>` +
    `<td><code>${escapeHtml(schemaText(p.schema))}</code></td><td>${escapeHtml(p.description)}</td></tr>`);
  return `<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr>${rows.join('')}</table>`;
}

function responsesTable(doc: OpenApiDocument, op: OpenApiOperation): string {
  const rows = Object.entries(op.responses).map(([status, r]) => {
    const res = deref<OpenApiResponse>(doc, r);
    const types = Object.keys(res.content ?? {}).join(', ');
    return `<tr><td>${escapeHtml(status)}</td><td>${escapeHtml(res.description)}</td><td><code>${escapeHtml(types)}</code></td></tr>`;
  });
  return `<table><tr><th>status</th><th>description</th><th>content</th></tr>${rows.join('')}</table>`;
}

function operationSection(doc: OpenApiDocument, path: string, method: string, op: OpenApiOperation & { summary?: string; description?: string }): string {
  const id = escapeHtml(op.operationId);
  return `<section id="${id}"><h2><span class="m">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h2>` +
    `<p><b>${escapeHtml(op.summary)}</b> <small>(${id})</small></p>` +
    (op.description ? `<pre class="d">${escapeHtml(op.description.trim())}</pre>` : '') +
    (op.security ? '<p>Needs a bearer token (see the description).</p>' : '') +
    (op.requestBody ? '<p>Takes a request body (see the description and openapi.yaml).</p>' : '') +
    `<h3>Parameters</h3>${parametersTable(doc, op)}<h3>Responses</h3>${responsesTable(doc, op)}</section>`;
}

const STYLE = 'body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}table{border-collapse:collapse;margin:.5em 0}' +
  'td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}.m{background:#246;color:#fff;padding:0 .3em}' +
  'pre.d{white-space:pre-wrap;font-family:inherit}section{border-top:1px solid #888;margin-top:1.5em}';

/** The whole page, rendered once when the face starts. */
export function renderReference(doc: OpenApiDocument): string {
  const info = ((doc as { info?: Info }).info ?? {}) as Info;
  const ops = [...operations(doc)] as { path: string; method: string; op: OpenApiOperation & { summary?: string } }[];
  const index = ops.map(({ path, method, op }) => `<li><a href="#${escapeHtml(op.operationId)}">${method.toUpperCase()} ${escapeHtml(path)}</a> ${escapeHtml(op.summary)}</li>`);
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)} ${escapeHtml(info.version)} - API reference</title>` +
    `<style>${STYLE}</style></head><body><h1>${escapeHtml(info.title)} ${escapeHtml(info.version)}</h1>` +
    `<pre class="d">${escapeHtml(info.description?.trim())}</pre><p>The machine-readable description: <a href="/openapi.yaml">/openapi.yaml</a>.</p>` +
    `<ul>${index.join('')}</ul>${ops.map(({ path, method, op }) => operationSection(doc, path, method, op)).join('')}</body></html>\n`;
}
