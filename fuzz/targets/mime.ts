// MIME (gateway/tunnel/mime.ts): header fields, Content-Type, multipart bodies, transfer decoding.
import { decodeBody, fieldValue, parseContentType, parseEntity, splitMultipart } from '../../gateway/tunnel/mime.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'mime',
  description: 'parseEntity, parseContentType, splitMultipart (two levels) and decodeBody (RFC 5322, RFC 2045/2046)',
  maxLen: 16384,
  dictionary: ['\r\n', '\r\n\r\n', 'Content-Type: ', 'multipart/mixed; boundary=', 'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"', 'application/pkcs7-mime; smime-type=enveloped-data', '--b\r\n', '--b--', 'Content-Transfer-Encoding: base64', 'quoted-printable', '=?utf-8?', '"', ';', '\\', '\t'],
  fuzz(data) {
    const walk = (bytes: Buffer, depth: number): void => {
      const entity = parseEntity(bytes);
      const ct = parseContentType(fieldValue(entity.fields, 'content-type'));
      if (ct.type === 'multipart' && ct.params.boundary && depth < 2) {
        for (const part of splitMultipart(entity.body, ct.params.boundary)) walk(part, depth + 1);
      } else {
        decodeBody(entity);
      }
    };
    walk(data, 0);
  },
  expected: mailmeshError('TUNNEL_MALFORMED', 'TUNNEL_UNSUPPORTED'),
};
export default target;
