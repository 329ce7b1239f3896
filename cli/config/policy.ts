import { z } from 'zod';

const MODES = ['auto', 'require'] as const;
/** What mail without a usable key gets (gateway/policy.ts Fallback). */
const FALLBACKS = ['tls', 'opportunistic', 'reject', 'webmail'] as const;
const FORMATS = ['pgp-mime', 'smime'] as const;
const domainPolicy = z.strictObject({
  mode: z.enum(MODES).default('auto'),
  fallback: z.enum(FALLBACKS).default('tls'),
  format: z.enum(FORMATS).default('pgp-mime'),
});
/** A per-domain override: only what it sets differs from policy.default. */
const domainPolicyOverride = z.strictObject({ mode: z.enum(MODES).optional(), fallback: z.enum(FALLBACKS).optional(), format: z.enum(FORMATS).optional() });

/** The `policy` section (cli/config.ts assembles the schema): routing policy of the gateway (gateway/policy.ts; README "Routing policy"). */
export const policySection = z
  .strictObject({
    default: domainPolicy.prefault({}),
    /** Overrides per destination domain (`.example.org`: its subdomains), e.g. { "beta.test": { mode: require } }. */
    domains: z.record(z.string(), domainPolicyOverride).default({}),
    trigger: z
      .strictObject({
        /** A Subject starting with this tag forces encryption ('' turns it off). */
        subjectTag: z.string().default('[secure]'),
        /** This header (any value but no/false/0) forces encryption ('' turns it off). */
        header: z.string().default('X-Mailmesh-Encrypt'),
      })
      .prefault({}),
    /** Keep the real Subject on the outer message instead of `...`. */
    keepSubject: z.boolean().default(false),
    inbound: z
      .strictObject({
        invalidSignature: z.enum(['reject', 'mark']).default('reject'),
        unknownSigner: z.enum(['reject', 'mark']).default('mark'),
        unsigned: z.enum(['reject', 'mark']).default('reject'),
        /** A valid signature by a domain that is not the From domain (docs/security/authenticity.md). */
        authorMismatch: z.enum(['reject', 'mark']).default('reject'),
        /** strict: the signer is the From domain; relaxed: or a parent domain of it. */
        authorAlignment: z.enum(['strict', 'relaxed']).default('strict'),
        /** A signature by a key that is none of the sender domain's current, next or retained keys (docs/lifecycle.md). */
        keyChanged: z.enum(['reject', 'mark']).default('reject'),
        /** A tunnel message encrypted to a key we do not hold: reject (554 5.7.5) or defer (451 4.7.5). */
        undecryptable: z.enum(['reject', 'defer']).default('reject'),
      })
      .prefault({}),
  })
  .prefault({});
