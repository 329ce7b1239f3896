// Fixed key material for the targets that decrypt or verify (fuzz/fixtures/domain.json, made
// once by make-seeds.ts): seeds made with these keys reach the code behind a successful
// decryption or signature check. Test keys only; they protect nothing.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OwnDomain } from '../gateway/tunnel/types.js';
import type { SignedRecord } from '../directory/record.js';

/** The repository root, from the source tree (tap) or from .fuzz-build/. */
export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
}

export interface Fixtures {
  now: string;
  own: OwnDomain;
  /** A signed record of fuzz.example as a directory serves it, and the time it is valid at. */
  signed: SignedRecord;
  webmailKey: string;
}

let cached: Fixtures | undefined;

export function fixtures(): Fixtures {
  cached ??= JSON.parse(readFileSync(join(repoRoot(), 'fuzz', 'fixtures', 'domain.json'), 'utf8')) as Fixtures;
  return cached;
}
