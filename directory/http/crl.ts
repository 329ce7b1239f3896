import type { RouteHandlerMethod } from 'fastify';
import type { Directory } from '../directory.js';
import { MailmeshError } from '../errors.js';

/**
 * The domain CA's certificate revocation list (docs/lifecycle.md "Revoke"): what a leaf's CRL
 * distribution point (RFC 5280 §4.2.1.13) names. Handlers are named by their operationId in openapi.yaml.
 */
export function crlHandlers(directory: Directory): Record<string, RouteHandlerMethod> {
  return {
    // RFC 5280 §5: the CRL in DER; RFC 2585 §3, §4.2: served over HTTP as application/pkix-crl.
    async getDomainCrl(req, reply) {
      const record = await directory.getRecord((req.params as { domain: string }).domain);
      if (!record.crl) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no CRL`);
      return reply.type('application/pkix-crl').send(Buffer.from(record.crl, 'base64'));
    },
  };
}
