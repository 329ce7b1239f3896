import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isMailmeshError, type ErrorCode } from '../directory/errors.js';

type Asserts = Test;

/** Asserts that `f` throws a MailmeshError with this code. */
export function throwsCode(t: Asserts, f: () => unknown, code: ErrorCode, msg?: string): void {
  try {
    f();
  } catch (e) {
    t.ok(isMailmeshError(e, code), `${msg ?? 'throws'} ${code} (got ${(e as { code?: string }).code ?? e})`);
    return;
  }
  t.fail(`${msg ?? 'expected'} ${code}, nothing was thrown`);
}

/** Asserts that the promise rejects with a MailmeshError with this code. */
export async function rejectsCode(t: Asserts, p: Promise<unknown> | (() => Promise<unknown>), code: ErrorCode, msg?: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    t.ok(isMailmeshError(e, code), `${msg ?? 'rejects'} ${code} (got ${(e as { code?: string }).code ?? e})`);
    return;
  }
  t.fail(`${msg ?? 'expected'} ${code}, it resolved`);
}

/** A temporary directory removed when the test ends. */
export function tempDir(t: Asserts, prefix = 'mailmesh-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The Redis the tests use; CI fails (never skips) when it is unreachable. */
export const TEST_REDIS_URL = process.env.MAILMESH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
