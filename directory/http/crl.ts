import type { RouteHandlerMethod } from 'fastify';
import type { Directory } from '../directory.js';
import { MailmeshError } from '../errors.js';
import { crlIssuerKey } from '../smime.js';

/**
 * The domain CAs' certificate revocation lists (docs/lifecycle.md "Revoke"): what a leaf's CRL
 * distribution point (RFC 5280 §4.2.1.13) names, `/crl/{caKeyId}` of the CA that issued it.
 * Handlers are named by their operationId in openapi.yaml.
 */
export function crlHandlers(directory: Directory): Record<string, RouteHandlerMethod> {
  // RFC 5280 §5: the CRL in DER; RFC 2585 §3, §4.2: served over HTTP as application/pkix-crl.
  return {
    /** The newest CA's CRL (the record's first). */
    async getDomainCrl(req, reply) {
      const record = await directory.getRecord((req.params as { domain: string }).domain);
      const crl = record.crls?.[0];
      if (!crl) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no CRL`);
      return reply.type('application/pkix-crl').send(Buffer.from(crl, 'base64'));
    },
    /** The CRL whose issuer's key identifier (its authority key identifier, RFC 5280 §5.2.1, hex) is caKeyId. */
    async getDomainCaCrl(req, reply) {
      const params = req.params as { domain: string; caKeyId: string };
      const record = await directory.getRecord(params.domain);
      const keyId = params.caKeyId.toLowerCase();
      const crl = record.crls?.find((c) => crlIssuerKey(Buffer.from(c, 'base64'))?.keyId === keyId);
      if (!crl) throw new MailmeshError('NOT_FOUND', `${record.domain} publishes no CRL of the CA ${params.caKeyId}`);
      return reply.type('application/pkix-crl').send(Buffer.from(crl, 'base64'));
    },
  };
}
