// BER framing of the LDAP face (directory/ldap/ber.ts): a receive buffer split into messages,
// each checked; none of these functions may throw, whatever the bytes.
import { checkMessage, isWellFormedMessage, readHeader, takeMessages } from '../../directory/ldap/ber.js';
import { invariant, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'ldap-ber',
  description: 'readHeader, takeMessages, isWellFormedMessage and checkMessage on a receive buffer',
  maxLen: 4096,
  dictionary: [Buffer.from([0x30, 0x84]), Buffer.from([0x30, 0x80]), Buffer.from([0x63, 0x82]), Buffer.from([0xa0, 0x00]), Buffer.from([0x04, 0x00]), Buffer.from([0x87, 0x0b]), Buffer.from('objectClass')],
  fuzz(data) {
    for (let i = 0; i < Math.min(data.length, 8); i++) readHeader(data, i);
    isWellFormedMessage(data);
    const taken = takeMessages(data, 1024);
    if (taken === 'invalid') return;
    invariant(taken.messages.reduce((n, m) => n + m.length, 0) + taken.rest.length === data.length, 'messages and rest add up to the input');
    for (const m of taken.messages) {
      const env = checkMessage(m);
      if (env) invariant(env.messageId >= 0 && env.messageId < 2 ** 31 && isWellFormedMessage(m), 'a checked message is well-formed with a valid ID');
    }
  },
  expected: () => false,
};
export default target;
