import { z } from 'zod';

/** Let's Encrypt's production directory (RFC 8555 §7.1.1); its staging one is https://acme-staging-v02.api.letsencrypt.org/directory. */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';

/** Certificates from an ACME CA (RFC 8555) for the HTTPS face and STARTTLS (docs/acme.md). */
export const acmeSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** The CA's directory URL; default Let's Encrypt production. */
    directoryUrl: z.string().url().default(LETS_ENCRYPT),
    /** Contact address of the ACME account (RFC 8555 §7.3), optional. */
    email: z.string().email().optional(),
    /** The names to order; default the host of http.publicUrl (when that setting exists) else none. */
    domains: z.array(z.string().min(1)).default([]),
    /** http-01 (RFC 8555 §8.3, on the HTTP face, port 80) or tls-alpn-01 (RFC 8737, on the HTTPS face, port 443). */
    challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
    /** Order a new certificate when the one in the store expires within this many days. */
    renewBeforeDays: z.number().int().min(1).max(365).default(30),
    /** How often every node reads the store's certificate, and the ordering node checks its expiry. */
    checkIntervalSec: z.number().int().min(1).default(3600),
    /** Extra CA certificates (PEM file) trusted for the ACME server's HTTPS, e.g. a private or test CA. */
    caFile: z.string().min(1).optional(),
  })
  .prefault({});

export type AcmeConfig = z.infer<typeof acmeSection>;
