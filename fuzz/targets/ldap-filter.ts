// LDAP search filters (RFC 4511 §4.5.1.7): the input is the Filter element, put into a fixed
// SearchRequest, then checked, parsed by ldapjs and evaluated by filter.ts like the face does.
import { ldapMessage } from '../ldap.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

/** RFC 4511 §4.5.1: SearchRequest { base, scope sub, derefAliases, sizeLimit, timeLimit, typesOnly, filter, attributes }. */
export function searchWith(filter: Buffer): Buffer {
  const op = tlv(0x63, Buffer.concat([
    tlv(0x04, Buffer.from('dc=mailmesh')), Buffer.from([0x0a, 1, 2, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0]),
    filter, tlv(0x30, Buffer.alloc(0)),
  ]));
  return tlv(0x30, Buffer.concat([Buffer.from([0x02, 1, 7]), op]));
}

const target: FuzzTarget = {
  name: 'ldap-filter',
  description: 'a Filter element in a SearchRequest: checkMessage, ldapjs filter parse, compileFilter and evaluation',
  maxLen: 2048,
  dictionary: [Buffer.from([0xa0]), Buffer.from([0xa1]), Buffer.from([0xa2]), Buffer.from([0xa3]), Buffer.from([0xa4]), Buffer.from([0x80]), Buffer.from([0x81]), Buffer.from([0x82]), Buffer.from([0x87]), Buffer.from([0xa8]), Buffer.from([0xa9]), Buffer.from('objectClass'), Buffer.from('mail'), Buffer.from('cn;lang-en'), Buffer.from('*@fuzz.example')],
  fuzz(data) {
    ldapMessage(searchWith(data));
  },
  expected: mailmeshError('BAD_REQUEST'),
};
export default target;
