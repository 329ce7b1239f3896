import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import { parse as parseYaml } from 'yaml';

/** The parts of an OpenAPI 3.1 document this server reads. */
export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema?: Record<string, unknown>;
  example?: unknown;
}
export interface OpenApiResponse {
  description: string;
  content?: Record<string, { schema?: Record<string, unknown> }>;
}
/** A `$ref` to `#/components/…` (OpenAPI 3.1 §4.8.23). */
export interface OpenApiRef {
  $ref: string;
}
export interface OpenApiOperation {
  operationId: string;
  parameters?: (OpenApiParameter | OpenApiRef)[];
  /** Operations that take a body (join, leave, import); the handler checks the body. */
  requestBody?: unknown;
  /** Operations that need a bearer token (RFC 6750); their tests send one. */
  security?: unknown[];
  responses: Record<string, OpenApiResponse | OpenApiRef>;
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: {
    schemas: Record<string, Record<string, unknown>>;
    parameters?: Record<string, OpenApiParameter>;
    responses?: Record<string, OpenApiResponse>;
  };
}

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'patch'] as const;

/** A file at the project root (openapi.yaml, package.json), found from this file in the source tree or in dist/. */
export function projectFile(name: string): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} not found above ${import.meta.url}`);
  }
}

export const openApiPath = (): string => projectFile('openapi.yaml');

/** The version in package.json (the HTTP face's `mailmesh_build_info`). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(projectFile('package.json'), 'utf8')) as { version: string }).version;
}

let cached: OpenApiDocument | undefined;
export function loadOpenApi(): OpenApiDocument {
  cached ??= parseYaml(readFileSync(openApiPath(), 'utf8')) as OpenApiDocument;
  return cached;
}

export function* operations(doc: OpenApiDocument): Generator<{ path: string; method: string; op: OpenApiOperation }> {
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (op) yield { path, method, op };
    }
  }
}

/** Follows a local `$ref` (`#/components/<kind>/<name>`) to what it names; anything else is returned as is. */
export function deref<T extends object>(doc: OpenApiDocument, item: T | OpenApiRef): T {
  if (!('$ref' in item)) return item;
  let target: unknown = doc;
  for (const part of item.$ref.replace(/^#\//, '').split('/')) target = (target as Record<string, unknown> | undefined)?.[part];
  if (!target || typeof target !== 'object') throw new Error(`openapi.yaml: unresolved $ref ${item.$ref}`);
  return target as T;
}

/** OpenAPI path template to a fastify route: `/v1/domains/{domain}` → `/v1/domains/:domain`. */
export function fastifyPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

function paramSchema(params: OpenApiParameter[], where: 'path' | 'query') {
  const mine = params.filter((p) => p.in === where);
  if (mine.length === 0) return undefined;
  return {
    type: 'object',
    properties: Object.fromEntries(mine.map((p) => [p.name, p.schema ?? { type: 'string' }])),
    required: mine.filter((p) => p.required).map((p) => p.name),
  };
}

/**
 * Registers one route per OpenAPI operation, with request validation from its parameters.
 * Every operation needs a handler and every handler an operation, so the file cannot drift.
 */
export function registerOperations(app: FastifyInstance, doc: OpenApiDocument, handlers: Record<string, RouteHandlerMethod>): void {
  const unused = new Set(Object.keys(handlers));
  for (const { path, method, op } of operations(doc)) {
    const handler = handlers[op.operationId];
    if (!handler) throw new Error(`openapi.yaml: no handler for operation ${op.operationId} (${method.toUpperCase()} ${path})`);
    unused.delete(op.operationId);
    const params = (op.parameters ?? []).map((p) => deref<OpenApiParameter>(doc, p));
    app.route({
      method: method.toUpperCase() as 'GET',
      url: fastifyPath(path),
      schema: Object.fromEntries(
        Object.entries({ params: paramSchema(params, 'path'), querystring: paramSchema(params, 'query') }).filter(([, v]) => v),
      ),
      handler,
    });
  }
  if (unused.size) throw new Error(`handlers without an operation in openapi.yaml: ${[...unused].join(', ')}`);
}
