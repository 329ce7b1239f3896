// LDAP requests as the face receives them (directory/ldap/ber.ts checkMessage, ldapjs, filter.ts).
import { takeMessages } from '../../directory/ldap/ber.js';
import { ldapMessage } from '../ldap.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'ldap-request',
  description: 'a receive buffer: takeMessages, checkMessage, ldapjs parse of bind/search/unbind/abandon, filter evaluation',
  maxLen: 4096,
  dictionary: [Buffer.from([0x30, 0x84]), Buffer.from([0x63, 0x82]), Buffer.from([0xa0, 0x00]), Buffer.from([0x87, 0x0b]), Buffer.from([0xa4]), Buffer.from([0xa9]), Buffer.from('objectClass'), Buffer.from('dc=mailmesh'), Buffer.from('mail')],
  fuzz(data) {
    const taken = takeMessages(data, 256 * 1024);
    if (taken === 'invalid') return;
    for (const m of taken.messages) ldapMessage(m);
  },
  expected: mailmeshError('BAD_REQUEST'),
};
export default target;
