// CMS SignedData (gateway/tunnel/cms/signed.ts verifySigned): encapsulated content.
import { verifySigned } from '../../gateway/tunnel/cms/signed.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'cms-signed',
  description: 'verifySigned on SignedData (RFC 5652 §5): signer infos, certificates, signed attributes, digests',
  maxLen: 8192,
  dictionary: [Buffer.from([0x30, 0x80]), Buffer.from([0, 0]), Buffer.from([0xa0, 0x80]), Buffer.from([0x31, 0x00]), Buffer.from('2a864886f70d010702', 'hex'), Buffer.from('2a864886f70d010904', 'hex'), Buffer.from('2a864886f70d010903', 'hex'), Buffer.from('608648016503040201', 'hex'), Buffer.from('2a864886f70d01010b', 'hex')],
  async fuzz(data) {
    await verifySigned(data, undefined, []);
  },
  expected: mailmeshError('TUNNEL_MALFORMED', 'TUNNEL_UNSUPPORTED'),
};
export default target;
