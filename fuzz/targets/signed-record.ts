// The signed-record verifier (directory/signed.ts verifySigned) on a record from the network.
// Input: the JSON body ({payload, signature}); text that is not JSON is taken as the payload,
// with the fixture record's signature (so the payload checks are reached most of the time).
import { verifySigned } from '../../directory/signed.js';
import { fixtures } from '../fixtures.js';
import { mailmeshError, type FuzzTarget } from '../target.js';

const target: FuzzTarget = {
  name: 'signed-record',
  description: 'verifySigned: shape, canonical JSON payload, every field, keys bound to the domain, OpenPGP signature',
  maxLen: 16384,
  dictionary: ['"payload"', '"signature"', '"domain"', '"keys"', '"openpgp"', '"smime"', '"validity"', '"gateways"', '"formats"', '"next"', '"revocations"', '"crls"', '"issued"', '"v":1', 'mailmesh.domain-record', '\\u0000', '\\ud800', '1e999', '-0', '[]', '{}', 'null'],
  async fuzz(data) {
    const text = data.toString('utf8');
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch {
      input = { payload: text, signature: fixtures().signed.signature };
    }
    await verifySigned(input, new Date(fixtures().now));
  },
  expected: mailmeshError('SIGNED_RECORD_MALFORMED', 'SIGNATURE_INVALID', 'KEY_UNREADABLE', 'KEY_WRONG_DOMAIN', 'KEY_EXPIRED', 'KEY_NOT_YET_VALID', 'KEY_REVOKED', 'KEY_TOO_WEAK', 'KEY_NO_ENCRYPTION', 'KEY_USAGE', 'CHAIN_INVALID', 'DOMAIN_INVALID', 'ADDRESS_INVALID'),
};
export default target;
