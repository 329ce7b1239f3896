import type { FastifyInstance } from 'fastify';
import { MailmeshError } from '../errors.js';
import { errorBody, logRefusal, newRequestId } from './errors.js';

/** Arrays and objects nested deeper than this are refused before parsing (docs/security/edges.md). */
export const MAX_JSON_DEPTH = 64;

/**
 * The deepest nesting of arrays and objects in a JSON text (RFC 8259 §2), in one pass without
 * recursion, so a 10,000-deep `[[[[…` costs a loop, not a stack. Brackets inside strings
 * (§7, with backslash escapes) do not count. Stops as soon as `max` is passed.
 */
export function jsonDepth(text: string, max = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest && (deepest = depth) > max) return deepest;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** RFC 8259 §8.1: JSON exchanged between systems is UTF-8; a charset parameter, if any, must say so. */
function checkCharset(contentType: string | undefined): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '')?.[1];
  if (charset && charset.toLowerCase() !== 'utf-8' && charset.toLowerCase() !== 'utf8') {
    throw new MailmeshError('MEDIA_TYPE_UNSUPPORTED', `JSON must be UTF-8 (RFC 8259 §8.1), not ${charset}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * The one body parser of the directory's JSON operations (join, leave, import): UTF-8 only,
 * strictly decoded, nesting bounded, prototype keys refused; nothing else is parsed (other
 * media types answer 415 MEDIA_TYPE_UNSUPPORTED). Every refusal is a 4xx with a stable code.
 */
export function registerJsonBody(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    try {
      checkCharset(req.headers['content-type']);
      const buf = body as Buffer;
      if (buf.length === 0) throw new MailmeshError('BAD_REQUEST', 'the JSON body is empty');
      let text: string;
      try {
        text = utf8.decode(buf);
      } catch {
        throw new MailmeshError('BODY_ENCODING');
      }
      if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new MailmeshError('BODY_TOO_DEEP', `nested deeper than ${MAX_JSON_DEPTH}`);
      parse(req, text, (err, value) => done(err ? new MailmeshError('BAD_REQUEST', err.message) : null, value));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
}

/**
 * RFC 9110 §10.1.1: a client that sends `Expect: 100-continue` waits for 100 before its body. A
 * body declared (Content-Length, §8.6) larger than any route takes is answered 413 at once and
 * the connection closed, rather than 100 Continue and megabytes read only to be refused (a
 * client that gives up waiting then saw only the 100). Every other request continues as Node
 * does by default.
 */
export function refuseLargeBeforeContinue(app: FastifyInstance, largest: number): void {
  app.server.on('checkContinue', (req, res) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > largest) {
      // Before fastify has a request: its ID is made here, as genReqId would (errors.ts).
      const reqId = newRequestId();
      const e = new MailmeshError('BODY_TOO_LARGE', `${declared} bytes declared, at most ${largest} taken`);
      logRefusal(app.log.child({ reqId }), e);
      res.writeHead(413, { 'content-type': 'application/json', 'x-request-id': reqId, connection: 'close' });
      res.end(errorBody(e, reqId));
      return;
    }
    res.writeContinue();
    app.server.emit('request', req, res);
  });
}
