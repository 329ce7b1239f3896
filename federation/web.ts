import { isIP } from 'node:net';
import { CATALOGUE, isMailmeshError, MailmeshError } from '../directory/errors.js';

/** What discovery and proofs use to reach HTTPS sources; injectable for tests (the global fetch by default). */
export type Fetch = typeof fetch;

const MAX_BODY = 1024 * 1024;

/** Plain HTTP only to loopback hosts (tests, a directory on the same machine); everything else must be HTTPS. */
export function checkUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MailmeshError('CONFIG_INVALID', `${JSON.stringify(url)} is not a URL`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new MailmeshError('CONFIG_INVALID', `${u.origin}: only https (plain http only on loopback)`);
  }
  return u;
}

/**
 * GET a JSON document. 404 (and 410) is `undefined`: the source has nothing. Other failures
 * (unreachable, 5xx, not JSON, over 1 MiB) are LOOKUP_UNAVAILABLE.
 */
export async function getJson(url: string, opts: { fetch?: Fetch; timeoutMs?: number } = {}): Promise<unknown> {
  const u = checkUrl(url);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(u, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(opts.timeoutMs ?? 5000), redirect: 'error' });
  } catch (e) {
    // A guarded fetch (federation/outbound.ts) refuses with a code of its own: kept.
    if (isMailmeshError(e)) throw e;
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: ${(e as Error).message}`);
  }
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel();
    return undefined;
  }
  const text = await res.text();
  if (!res.ok) throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: HTTP ${res.status}`);
  if (text.length > MAX_BODY) throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: answer too large`);
  try {
    return JSON.parse(text);
  } catch {
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: not JSON`);
  }
}

/** Reads a body, stopping (and cancelling the rest) as soon as it passes `max` bytes. */
async function readAtMost(res: Response, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  for (let r = await reader?.read(); r && !r.done; r = await reader!.read()) {
    total += r.value.length;
    if (total > max) {
      await reader!.cancel().catch(() => undefined);
      throw new Error(`answer larger than ${max} bytes`);
    }
    chunks.push(Buffer.from(r.value));
  }
  return Buffer.concat(chunks);
}

/** GET binary content (a WKD key, a log tile); 404 is `undefined`, other failures LOOKUP_UNAVAILABLE; `maxBytes` (default 1 MiB) bounds what is read. */
export async function getBytes(url: string, opts: { fetch?: Fetch; timeoutMs?: number; maxBytes?: number } = {}): Promise<Buffer | undefined> {
  const u = checkUrl(url);
  try {
    const res = await (opts.fetch ?? fetch)(u, { signal: AbortSignal.timeout(opts.timeoutMs ?? 5000), redirect: 'error' });
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await readAtMost(res, opts.maxBytes ?? MAX_BODY);
  } catch (e) {
    if (isMailmeshError(e, 'ADDRESS_FORBIDDEN')) throw e;
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: ${(e as Error).message}`);
  }
}

/** Sends JSON and returns the JSON answer; an error answer `{error: {code}}` is rethrown as that MailmeshError code when known. */
export async function sendJson(method: 'POST' | 'DELETE', url: string, body: unknown, opts: { fetch?: Fetch; timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<unknown> {
  const u = checkUrl(url);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(u, {
      method,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...opts.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30000),
    });
  } catch (e) {
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}: ${(e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MailmeshError('LOOKUP_UNAVAILABLE', `${u.origin}${u.pathname}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string; requestId?: string } }).error;
    const code = err?.code && err.code in CATALOGUE ? (err.code as keyof typeof CATALOGUE) : 'LOOKUP_UNAVAILABLE';
    // The request ID finds the detail in that directory's log (its operator's, docs/http.md "Errors").
    const request = typeof err?.requestId === 'string' ? ` (request ${err.requestId.slice(0, 64)})` : '';
    throw new MailmeshError(code, `${u.origin}: ${err?.message ?? `HTTP ${res.status}`}${request}`);
  }
  return json;
}

/** `https://{domain}` style templates (federation.wellKnownBase) to a function of the domain. */
export function baseFor(template: string): (domain: string) => string {
  return (domain) => template.replaceAll('{domain}', domain).replace(/\/+$/, '');
}
