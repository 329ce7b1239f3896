// Tunnel classification (gateway/tunnel/tunnel.ts classifyMessage): never throws, whatever the message.
import { classifyMessage, readTunnel } from '../../gateway/tunnel/tunnel.js';
import { fixtures } from '../fixtures.js';
import type { FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'classify',
  description: 'classifyMessage with our domain keys: plain, tunnel or personal (PGP/MIME, S/MIME, inline PGP)',
  maxLen: 16384,
  dictionary: ['\r\n\r\n', 'Content-Type: ', 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"', 'application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m', 'authenveloped-data', '-----BEGIN PGP MESSAGE-----', '--b\r\n', 'Content-Transfer-Encoding: base64\r\n'],
  async fuzz(data) {
    await classifyMessage(readTunnel(data), fixtures().own.keys);
  },
  expected: () => false,
};
export default target;
