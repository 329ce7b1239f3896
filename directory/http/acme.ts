import type { RouteHandlerMethod } from 'fastify';
import { MailmeshError } from '../errors.js';

/** Who answers ACME http-01 challenges (the ACME client of cli/acme.ts, wired by cli/app.ts). */
export interface AcmeResponder {
  /** The key authorization for `token`, while its challenge is pending. */
  httpAnswer(token: string): string | undefined;
}

/**
 * RFC 8555 §8.3: GET /.well-known/acme-challenge/<token> answers the key authorization as
 * application/octet-stream while the challenge is pending; anything else is NOT_FOUND.
 */
export function acmeHandlers(responder: AcmeResponder | undefined): Record<string, RouteHandlerMethod> {
  return {
    async getAcmeChallenge(req, reply) {
      const token = (req.params as { token: string }).token;
      const answer = responder?.httpAnswer(token);
      if (answer === undefined) throw new MailmeshError('NOT_FOUND', 'no pending ACME challenge for this token');
      return reply.type('application/octet-stream').send(answer);
    },
  };
}
