// OpenPGP key import (directory/keys.ts importOpenPgp: readOpenPgpKey and validateOpenPgpKey).
import { parseDomain } from '../../directory/domain.js';
import { importOpenPgp } from '../../directory/keys.js';
import { fixtures } from '../fixtures.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const domain = parseDomain('fuzz.example');

const target: FuzzTarget = {
  name: 'openpgp-key',
  description: 'importOpenPgp of a binary or armored transferable public key for fuzz.example (RFC 4880 §11.1)',
  maxLen: 8192,
  dictionary: ['-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n', '\n-----END PGP PUBLIC KEY BLOCK-----\n', Buffer.from([0x99]), Buffer.from([0xb4]), Buffer.from([0x89]), Buffer.from([0xb9]), Buffer.from([0xc6]), Buffer.from([0x04]), Buffer.from([0x05]), Buffer.from([0x16]), Buffer.from([0x12]), Buffer.from([0x01]), '<domain-key@fuzz.example>'],
  async fuzz(data) {
    await importOpenPgp(data, domain, new Date(fixtures().now));
  },
  expected: mailmeshError('KEY_UNREADABLE', 'KEY_WRONG_DOMAIN', 'KEY_EXPIRED', 'KEY_NOT_YET_VALID', 'KEY_REVOKED', 'KEY_TOO_WEAK', 'KEY_NO_ENCRYPTION', 'KEY_USAGE', 'DOMAIN_INVALID', 'ADDRESS_INVALID'),
};
export default target;
