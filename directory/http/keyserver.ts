import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type * as openpgp from 'openpgp';
import type { Directory } from '../directory.js';
import { parseDomain } from '../domain.js';
import { MailmeshError } from '../errors.js';
import { wkdKey } from '../wkd.js';
import { hkpIndex, parseHkpSearch } from './hkp.js';
import { armorKeys, type KeyQuery, type PublishedKeys } from './keys.js';

/**
 * The key-server protocols of the HTTP face: WKD (draft-koch-openpgp-webkey-service), HKP
 * (draft-shaw-openpgp-hkp) and VKS (Hagrid's `/vks/v1`). Handlers are named by their
 * operationId in openapi.yaml; failures are thrown as MailmeshError and rendered as JSON.
 */
export function keyServerHandlers(directory: Directory, keys: PublishedKeys): Record<string, RouteHandlerMethod> {
  // The WKD answer of a parsed key for one domain and hash never changes (a changed key is a new
  // object from PublishedKeys), so it is serialized once: re-serializing it was the largest part of
  // a WKD request (BENCHMARKS.md). Only answers are kept, so a key holds at most one entry per user ID
  // and announced next key.
  const wkdAnswers = new WeakMap<openpgp.PublicKey, Map<string, Buffer>>();

  // draft-koch-openpgp-webkey-service §3.1: the binary key, application/octet-stream; only the
  // user ID that matches the hashed local part (the domain key answers for domainkey@<domain>).
  // During a roll the announced next key follows the current one (§3.1 allows several keys, as
  // concatenated transferable public keys, RFC 4880 §11.1): a reader that takes the first key
  // gets the current one.
  async function wkd(domainInput: string, hash: string, reply: FastifyReply) {
    const domain = parseDomain(domainInput);
    const { key, next } = await keys.ofDomain(domain);
    let answers = wkdAnswers.get(key);
    if (!answers) wkdAnswers.set(key, (answers = new Map()));
    const id = `${domain} ${hash} ${next?.getFingerprint() ?? ''}`;
    let body = answers.get(id);
    if (!body) {
      const reduced = wkdKey(key, domain, hash);
      if (!reduced) throw new MailmeshError('NOT_FOUND', `no key for ${hash} in ${domain}`);
      const nextReduced = next && wkdKey(next, domain, hash);
      answers.set(id, (body = Buffer.concat([reduced, ...(nextReduced ? [nextReduced] : [])])));
    }
    return reply.type('application/octet-stream').send(body);
  }

  // draft-koch-openpgp-webkey-service §4.5: the policy file (which may be empty) says the domain
  // takes part in WKD; ours sets no policy flag and holds only '#' comment lines.
  async function policy(domainInput: string, reply: FastifyReply) {
    const record = await directory.getRecord(domainInput);
    return reply
      .type('text/plain; charset=utf-8')
      .send(`# mailmesh directory: Web Key Directory of ${record.domain}\n# keys: domainkey@${record.domain} (the domain key); no submission\n`);
  }

  /** The Host header names the domain in the direct method (port stripped by fastify's hostname). */
  const hostDomain = (req: FastifyRequest) => {
    if (!req.hostname) throw new MailmeshError('DOMAIN_INVALID', 'the direct method needs a Host header');
    return req.hostname;
  };

  async function armored(q: KeyQuery, reply: FastifyReply) {
    const found = await keys.find(q);
    if (!found.length) throw new MailmeshError('NOT_FOUND', 'no key matches');
    return reply.type('application/pgp-keys').send(armorKeys(found.map((f) => f.key)));
  }

  type WkdParams = { domain: string; hash: string };
  const advanced: RouteHandlerMethod = (req, reply) => wkd((req.params as WkdParams).domain, (req.params as WkdParams).hash, reply);
  const direct: RouteHandlerMethod = (req, reply) => wkd(hostDomain(req), (req.params as WkdParams).hash, reply);
  const advancedPolicy: RouteHandlerMethod = (req, reply) => policy((req.params as WkdParams).domain, reply);
  const directPolicy: RouteHandlerMethod = (req, reply) => policy(hostDomain(req), reply);

  return {
    getWkdAdvanced: advanced,
    headWkdAdvanced: advanced,
    getWkdDirect: direct,
    headWkdDirect: direct,
    getWkdPolicyAdvanced: advancedPolicy,
    headWkdPolicyAdvanced: advancedPolicy,
    getWkdPolicyDirect: directPolicy,
    headWkdPolicyDirect: directPolicy,

    // draft-shaw-openpgp-hkp §3: op=get answers armored keys, op=index (and vindex) the
    // machine-readable index of §5.2 whatever `options` says.
    async hkpLookup(req, reply) {
      const q = req.query as { op: 'get' | 'index' | 'vindex'; search: string; options?: string; exact?: 'on' | 'off' };
      const found = await keys.find(parseHkpSearch(q.search, q.exact === 'on'));
      if (!found.length) throw new MailmeshError('NOT_FOUND', `no key matches ${JSON.stringify(q.search)}`);
      const machineReadable = (q.options ?? '').split(',').includes('mr');
      if (q.op === 'get') {
        return reply.type(machineReadable ? 'application/pgp-keys' : 'text/plain; charset=utf-8').send(armorKeys(found.map((f) => f.key)));
      }
      return reply.type('text/plain; charset=utf-8').send(await hkpIndex(found.map((f) => f.key), directory.clock()));
    },

    // Hagrid VKS v1: the armored key, application/pgp-keys.
    vksByFingerprint: (req, reply) => armored({ fingerprint: (req.params as { fingerprint: string }).fingerprint.toUpperCase() }, reply),
    vksByKeyId: (req, reply) => armored({ keyId: (req.params as { keyid: string }).keyid.toUpperCase() }, reply),
    vksByEmail: (req, reply) => armored({ address: (req.params as { email: string }).email }, reply),
  };
}
