// WebMail forms and ciphertext (gateway/webmail/webmail.ts sealedFrom, crypto.ts openMessage):
// an urlencoded form body, as the WebMail routes parse it, then the sealed message opened.
import { randomBytes } from 'node:crypto';
import { MemoryStore } from '../../directory/store/memory.js';
import { openMessage, WebmailKeys } from '../../gateway/webmail/crypto.js';
import { sealedFrom } from '../../gateway/webmail/webmail.js';
import { fixtures } from '../fixtures.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

let keys: WebmailKeys;

const target: FuzzTarget = {
  name: 'webmail-form',
  description: 'application/x-www-form-urlencoded body → sealedFrom → openMessage (AES-256-GCM layout, binding, expiry)',
  maxLen: 8192,
  dictionary: ['&', '=', '%', '+', 'recipient=', 'messageId=', 'expires=', 'data=', 'csrf=', 'password=', '%00', '%ZZ', 'AQAAAAE'],
  async setup() {
    const store = new MemoryStore();
    const master = randomBytes(32);
    await WebmailKeys.restore(store, master, [{ version: 1, key: Buffer.from(fixtures().webmailKey, 'base64') }]);
    keys = await WebmailKeys.open(store, master);
  },
  async fuzz(data) {
    // webmail.ts register(): the body as a string, then WHATWG URL §5.1 urlencoded parsing.
    const form = Object.fromEntries(new URLSearchParams(data.toString('utf8')));
    await openMessage(keys, sealedFrom(form), new Date(fixtures().now));
  },
  expected: mailmeshError('WEBMAIL_INVALID', 'WEBMAIL_EXPIRED'),
};
export default target;
