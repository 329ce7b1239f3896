import * as openpgp from 'openpgp';
import type { Directory } from '../../directory/directory.js';

/**
 * Registered mail (docs/webmail.md): when a message asked for it, its first opening sends the
 * sender a receipt — time, recipient, message id — clear-signed with the sender domain's key.
 */
export interface Receipt {
  messageId: string;
  recipient: string;
  opened: Date;
}

/** The armored private OpenPGP key of a member domain of this directory, or undefined. */
export function domainKeyOf(directory: Directory): (domain: string) => Promise<string | undefined> {
  // A domain that is not ours has no private keys here: getSecrets fails, and there is no key.
  return async (domain) => (await directory.getSecrets(domain).catch(() => undefined))?.openpgp?.armored;
}

export function receiptText(r: Receipt): string {
  return [
    'Registered mail receipt (mailmesh WebMail)',
    '',
    `Message-ID: ${r.messageId}`,
    `Recipient:  ${r.recipient}`,
    `Opened:     ${r.opened.toISOString()}`,
    '',
    'The recipient opened this message for the first time at the time above.',
  ].join('\n');
}

/** RFC 4880 §7: the receipt as a cleartext signed message by the domain key. */
export async function signReceipt(r: Receipt, armoredKey: string): Promise<string> {
  const signingKeys = await openpgp.readPrivateKey({ armoredKey });
  const message = await openpgp.createCleartextMessage({ text: receiptText(r) });
  return openpgp.sign({ message, signingKeys, date: r.opened });
}
