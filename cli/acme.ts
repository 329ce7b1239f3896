import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext, rootCertificates, type SecureContext, type TlsOptions } from 'node:tls';
import * as acme from 'acme-client';
import type { Logger } from 'pino';
import { MailmeshError, registerCodes, type ErrorEntry } from '../directory/errors.js';
import { Sealer } from '../directory/seal.js';
import type { KvStore } from '../directory/store/store.js';
import type { TlsKeyPair } from '../directory/tls.js';
import type { AcmeConfig } from './config/acme.js';

/**
 * Certificates from an ACME CA (RFC 8555) for the HTTPS face and STARTTLS (docs/acme.md). It
 * lives in cli/, beside the composition root, because it joins a protocol library (acme-client)
 * with the store, the HTTP face and the SMTP listener; the directory core knows no protocol
 * library, and federation/ is about member domains, not this node's own names.
 */
const ACME_CODES = {
  ACME_ORDER_FAILED: { kind: 'unavailable', message: 'the ACME order failed; the current certificate stays in use' },
} as const satisfies Record<string, ErrorEntry>;
type AcmeCodes = typeof ACME_CODES;
declare module '../directory/errors.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- declaration merging
  interface ErrorCatalogue extends AcmeCodes {}
}
registerCodes(ACME_CODES);

/** RFC 8737 §6.2: the ALPN protocol of the tls-alpn-01 challenge. */
export const ACME_TLS_ALPN = 'acme-tls/1';

/**
 * The challenges in progress, as the faces answer them: http-01 key authorizations by token
 * (RFC 8555 §8.3, served by the HTTP face) and tls-alpn-01 certificates by name (RFC 8737 §3,
 * served by the HTTPS face). On a cluster only the node that orders holds them, so the CA's
 * requests must reach that node (docs/acme.md "Clusters").
 */
export class AcmeChallenges {
  readonly #http = new Map<string, string>();
  readonly #alpn = new Map<string, SecureContext>();

  /** RFC 8555 §8.3: the body of /.well-known/acme-challenge/<token>, or undefined. */
  httpAnswer(token: string): string | undefined {
    return this.#http.get(token);
  }

  /**
   * The HTTPS server's hooks for tls-alpn-01. Node selects the certificate (SNICallback) before
   * it sees ALPN, so while a name's challenge is pending (the seconds the CA takes to validate)
   * every handshake for that name gets the challenge certificate; ALPNCallback then agrees on
   * acme-tls/1 when offered (RFC 8737 §3), else on http/1.1.
   */
  tlsHooks(): Pick<TlsOptions, 'SNICallback' | 'ALPNCallback'> {
    return {
      SNICallback: (name, cb) => cb(null, this.#alpn.get(name.toLowerCase())),
      ALPNCallback: ({ servername, protocols }) =>
        protocols.includes(ACME_TLS_ALPN) && this.#alpn.has(servername.toLowerCase()) ? ACME_TLS_ALPN : protocols.includes('http/1.1') ? 'http/1.1' : undefined,
    };
  }

  async add(authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string): Promise<void> {
    if (challenge.type === 'http-01') this.#http.set(challenge.token, keyAuthorization);
    else {
      // RFC 8737 §3: a self-signed certificate for the name with the critical acmeIdentifier extension. ECDSA
      // like the face's own: with an RSA key here, the handshake kept the face's ECDSA certificate (Node 20).
      const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey());
      this.#alpn.set(authz.identifier.value.toLowerCase(), createSecureContext({ key, cert }));
    }
  }

  remove(authz: acme.Authorization, challenge: { type: string; token: string }): void {
    this.#http.delete(challenge.token);
    if (challenge.type === 'tls-alpn-01') this.#alpn.delete(authz.identifier.value.toLowerCase());
  }
}

/** A certificate as kept in the store: the chain, its key (sealed), the names and the end of validity. */
export interface AcmeCertificate {
  pair: TlsKeyPair;
  domains: string[];
  notAfter: Date;
}

interface StoredDocument {
  cert: string;
  key: string;
  domains: string[];
  notAfter: string;
}

const CERT_KV = 'acme:certificate';
const ACCOUNT_KV = 'acme:account';
const CERT_CONTEXT = 'mailmesh acme certificate key';
const ACCOUNT_CONTEXT = 'mailmesh acme account key';

export interface AcmeOptions {
  config: AcmeConfig;
  /** Where the account key and the certificate live, shared by every node of a cluster. */
  store: KvStore;
  masterKey: Buffer;
  challenges: AcmeChallenges;
  logger: Logger;
  /** Called with every certificate this node starts to serve (TlsHolder.set of each listener). */
  onCertificate: (pair: TlsKeyPair) => void;
  clock?: () => Date;
}

/** Trusts `caFile` beside the system's roots for the ACME server (acme-client's HTTP client is one per process). */
function trustCa(caFile: string | undefined): void {
  if (!caFile) return;
  let pem: string;
  try {
    pem = readFileSync(caFile, 'utf8');
  } catch (e) {
    throw new MailmeshError('CONFIG_INVALID', `acme.caFile: ${(e as Error).message}`);
  }
  acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, pem] });
}

/**
 * The node's certificate from an ACME CA: every node follows the one in the store
 * (`refresh`, `follow`); the node holding the lease orders when it is missing, names other
 * names, or expires within `renewBeforeDays` (`renewIfDue`, `startOrdering`). A failed order
 * is logged as ACME_ORDER_FAILED and the current certificate stays.
 */
export class AcmeCertificates {
  readonly #o: AcmeOptions;
  readonly #sealer: Sealer;
  readonly #clock: () => Date;
  #served: string | undefined;
  #ordering: Promise<'ordered' | 'current' | 'failed'> | undefined;

  constructor(o: AcmeOptions) {
    if (!o.config.domains.length) throw new MailmeshError('CONFIG_INVALID', 'acme.domains: no names to order (set acme.domains)');
    trustCa(o.config.caFile);
    this.#o = o;
    this.#sealer = new Sealer(o.masterKey);
    this.#clock = o.clock ?? (() => new Date());
  }

  /** The certificate in the store, or undefined (none yet). */
  async stored(): Promise<AcmeCertificate | undefined> {
    const text = await this.#o.store.kvGet(CERT_KV);
    if (!text) return undefined;
    const d = JSON.parse(text) as StoredDocument;
    const key = this.#sealer.open(Buffer.from(d.key, 'base64'), CERT_CONTEXT).toString('utf8');
    return { pair: { cert: d.cert, key }, domains: d.domains, notAfter: new Date(d.notAfter) };
  }

  /** Hands the store's certificate to the listeners when it is not the one they serve; true if it did. */
  async refresh(): Promise<boolean> {
    const c = await this.stored();
    if (!c || c.pair.cert === this.#served) return false;
    this.#serve(c);
    return true;
  }

  #serve(c: AcmeCertificate): void {
    this.#served = c.pair.cert;
    this.#o.onCertificate(c.pair);
    this.#o.logger.info({ domains: c.domains, notAfter: c.notAfter.toISOString() }, 'serving the ACME certificate');
  }

  /** Whether the stored certificate must be replaced: none, other names, or within renewBeforeDays of its end. */
  #due(c: AcmeCertificate | undefined): boolean {
    if (!c) return true;
    const want = [...this.#o.config.domains].sort().join(',');
    if ([...c.domains].sort().join(',') !== want) return true;
    return c.notAfter.getTime() - this.#clock().getTime() <= this.#o.config.renewBeforeDays * 86_400_000;
  }

  /** Orders when due (one order at a time); a failure is logged and the current certificate stays. */
  renewIfDue(): Promise<'ordered' | 'current' | 'failed'> {
    this.#ordering ??= (async () => {
      try {
        const current = await this.stored();
        if (!this.#due(current)) {
          if (current && current.pair.cert !== this.#served) this.#serve(current);
          return 'current';
        }
        this.#serve(await this.order());
        return 'ordered';
      } catch (err) {
        const code = err instanceof MailmeshError ? err.code : 'ACME_ORDER_FAILED';
        this.#o.logger.error({ err, code, domains: this.#o.config.domains }, 'ACME order failed; the current certificate stays in use');
        return 'failed';
      } finally {
        this.#ordering = undefined;
      }
    })();
    return this.#ordering;
  }

  /** Orders a certificate for acme.domains now and keeps it in the store (RFC 8555 §7.4). */
  async order(): Promise<AcmeCertificate> {
    const c = this.#o.config;
    const account = await this.#account();
    // With the account's URL the client skips registration (RFC 8555 §7.3.1 "onlyReturnExisting" answers an update that pebble refuses).
    const client = new acme.Client({ directoryUrl: c.directoryUrl, accountKey: account.key, accountUrl: account.url });
    const [key, csr] = await acme.crypto.createCsr({ commonName: c.domains[0], altNames: c.domains }, await acme.crypto.createPrivateEcdsaKey());
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        email: c.email,
        termsOfServiceAgreed: true,
        challengePriority: [c.challenge],
        // The CA validates through its own resolvers; a check from here would ask ours.
        skipChallengeVerification: true,
        challengeCreateFn: (authz, ch, keyAuthorization) => this.#o.challenges.add(authz, ch, keyAuthorization),
        challengeRemoveFn: async (authz, ch) => this.#o.challenges.remove(authz, ch),
      });
    } catch (e) {
      throw new MailmeshError('ACME_ORDER_FAILED', `${c.directoryUrl} ${c.domains.join(',')}: ${(e as Error).message}`);
    }
    if (!account.url) await this.#saveAccount(account.key, client.getAccountUrl());
    const info = acme.crypto.readCertificateInfo(cert);
    const doc: StoredDocument = { cert, key: this.#sealer.seal(key, CERT_CONTEXT).toString('base64'), domains: c.domains, notAfter: info.notAfter.toISOString() };
    await this.#o.store.kvPut(CERT_KV, JSON.stringify(doc));
    return { pair: { cert, key: key.toString('utf8') }, domains: c.domains, notAfter: info.notAfter };
  }

  /** The account (RFC 8555 §7.3) in the store, its key sealed: made on first use, one per directory URL; its URL once registered. */
  async #account(): Promise<{ key: Buffer; url?: string }> {
    const text = await this.#o.store.kvGet(ACCOUNT_KV);
    const held = text ? (JSON.parse(text) as { directoryUrl: string; key: string; url?: string }) : undefined;
    if (held?.directoryUrl === this.#o.config.directoryUrl) return { key: this.#sealer.open(Buffer.from(held.key, 'base64'), ACCOUNT_CONTEXT), url: held.url };
    const key = await acme.crypto.createPrivateEcdsaKey();
    await this.#saveAccount(key);
    return { key };
  }

  async #saveAccount(key: Buffer, url?: string): Promise<void> {
    const doc = { directoryUrl: this.#o.config.directoryUrl, key: this.#sealer.seal(key, ACCOUNT_CONTEXT).toString('base64'), url };
    await this.#o.store.kvPut(ACCOUNT_KV, JSON.stringify(doc));
  }

  /** Every node: reads the store every checkIntervalSec and serves a renewed certificate. Returns the stop function. */
  follow(): () => void {
    return this.#every(() => this.refresh().then(() => undefined), 'reading the ACME certificate failed');
  }

  /** The ordering node (the lease holder): checks now and every checkIntervalSec. Returns the stop function. */
  startOrdering(): () => void {
    return this.#every(() => this.renewIfDue().then(() => undefined), 'ACME check failed');
  }

  #every(f: () => Promise<void>, what: string): () => void {
    const run = () => void f().catch((err: unknown) => this.#o.logger.warn({ err }, what));
    const timer = setInterval(run, this.#o.config.checkIntervalSec * 1000);
    timer.unref();
    run();
    return () => clearInterval(timer);
  }
}
