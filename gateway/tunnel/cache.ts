/**
 * Parsed keys and certificates, kept by their text (armored OpenPGP key, PEM certificate or
 * private key). Parsing costs milliseconds per message — openpgp.js checks a key's
 * self-signatures, asn1js parses a certificate — and every message comes with the same few
 * keys. A key that changes (rollover, revocation, new expiry) has new text and so is a new
 * entry: the cache follows the directory without being told. Bounded: the entry used least
 * recently leaves first. A parse that fails (throws or rejects) is not kept, so its error
 * comes again the next time. The parsed objects are shared: callers must not modify them.
 */
export class ParsedCache<V> {
  readonly #entries = new Map<string, V>();

  constructor(readonly limit = 64) {}

  get size(): number {
    return this.#entries.size;
  }

  get(text: string, parse: (text: string) => V): V {
    const hit = this.#entries.get(text);
    if (hit !== undefined) {
      // Map keeps insertion order: move the entry to the end (most recently used).
      this.#entries.delete(text);
      this.#entries.set(text, hit);
      return hit;
    }
    const value = parse(text);
    this.#entries.set(text, value);
    if (value instanceof Promise) {
      value.catch(() => {
        if (this.#entries.get(text) === value) this.#entries.delete(text);
      });
    }
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.limit) break;
      this.#entries.delete(oldest);
    }
    return value;
  }
}
