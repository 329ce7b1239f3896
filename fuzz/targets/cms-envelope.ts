// CMS EnvelopedData and AuthEnvelopedData (gateway/tunnel/cms/envelope.ts) opened with our key.
import { openEnvelope, parseEnvelope } from '../../gateway/tunnel/cms/envelope.js';
import { fixtures } from '../fixtures.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'cms-envelope',
  description: 'parseEnvelope and openEnvelope (RFC 5652 §6, RFC 5083) with the fixture certificate and key',
  maxLen: 8192,
  dictionary: [Buffer.from([0x30, 0x80]), Buffer.from([0, 0]), Buffer.from([0x24, 0x80]), Buffer.from([0xa0, 0x80]), Buffer.from('2a864886f70d010907', 'hex'), Buffer.from('2a864886f70d010703', 'hex'), Buffer.from('2a864886f70d0109101117', 'hex'), Buffer.from('608648016503040106', 'hex'), Buffer.from('60864801650304012e', 'hex'), Buffer.from('608648016503040102', 'hex')],
  fuzz(data) {
    parseEnvelope(data);
    const own = fixtures().own;
    openEnvelope(data, own.keys.smime!.chain[0]!, own.secrets.smime!.keyPkcs8Pem);
  },
  expected: mailmeshError('TUNNEL_MALFORMED', 'TUNNEL_UNSUPPORTED', 'TUNNEL_NOT_FOR_US', 'TUNNEL_DECRYPT_FAILED'),
};
export default target;
