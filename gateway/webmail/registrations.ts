import type { KvStore } from '../../directory/store/store.js';
import { normalAddress } from './form.js';

/** Where the store keeps WebMail registrations (address → scrypt hash) and failure counters. */
export function regKey(address: string): string {
  return `webmail:reg:${address}`;
}

/** Forgets a recipient's password and failure counter; false if the address was not registered. */
export async function resetRegistration(store: KvStore, address: string): Promise<boolean> {
  const a = normalAddress(address);
  const existed = (await store.kvGet(regKey(a))) !== undefined;
  await store.kvDelete(regKey(a));
  await clearFailures(store, failureKey('rcpt', a));
  return existed;
}

/** The failure counters: per recipient (cleared by the right password) and per client address. */
export function failureKey(kind: 'rcpt' | 'client', id: string): string {
  return `webmail:failures:${kind}:${id}`;
}

export async function clearFailures(store: KvStore, key: string): Promise<void> {
  await store.kvDelete(key);
  await store.kvDelete(`${key}:last`);
}
