import t from 'tap';
import { isMailmeshError } from '../../../directory/errors.js';
import { negotiate } from '../../../directory/http/accept.js';
import { escapeIndexField, parseHkpSearch } from '../../../directory/http/hkp.js';
import { seeded, throwsCode } from '../../helpers.js';

const PGP = ['application/octet-stream', 'application/pgp-keys', 'text/plain'] as const;

const rnd = seeded(4242);
const randomText = (alphabet: string, max: number) =>
  Array.from({ length: Math.floor(rnd() * max) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');

t.test('Accept negotiation (RFC 9110 §12.5.1)', async (t) => {
  t.equal(negotiate(undefined, PGP), 'application/octet-stream', 'no header: the default');
  t.equal(negotiate('*/*', PGP), 'application/octet-stream');
  t.equal(negotiate('text/plain', PGP), 'text/plain');
  t.equal(negotiate('application/pgp-keys', PGP), 'application/pgp-keys');
  t.equal(negotiate('TEXT/Plain; charset=utf-8', PGP), 'text/plain', 'case-insensitive, other parameters ignored');
  t.equal(negotiate('text/plain, */*', PGP), 'text/plain', 'a named type beats the wildcard at equal q');
  t.equal(negotiate('text/*;q=0.5, application/pgp-keys;q=0.4', PGP), 'text/plain');
  t.equal(negotiate('application/*;q=0.2, text/plain;q=0.9', PGP), 'text/plain');
  t.equal(negotiate('application/*', PGP), 'application/octet-stream', 'ties go to the order of the offers');
  t.equal(negotiate('*/*;q=0.8, application/octet-stream;q=0', PGP), 'application/pgp-keys', 'q=0 refuses a type');
  t.equal(negotiate('application/json', PGP), 'application/octet-stream', 'nothing acceptable: the header is disregarded');
  t.equal(negotiate('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', PGP), 'application/octet-stream', 'a browser');
  t.equal(negotiate('text/plain;q=2, application/pgp-keys', PGP), 'application/pgp-keys', 'an invalid qvalue drops its range');
  t.equal(negotiate('*/plain', PGP), 'application/octet-stream', '*/subtype is no media range');
});

t.test('property: negotiate never throws and answers one of the offers', async (t) => {
  const alphabet = 'abcdeptx/*;,=q.01 9-+\t"\u00e9';
  for (let i = 0; i < 3000; i++) {
    const accept = randomText(alphabet, 60);
    const got = negotiate(accept, PGP);
    if (!PGP.includes(got as (typeof PGP)[number])) t.fail(`${JSON.stringify(accept)} → ${got}`);
  }
  t.equal(negotiate('text/plain,'.repeat(10_000), PGP), 'text/plain', 'a huge header is cut, not a problem');
});

t.test('HKP search argument (draft-shaw-openpgp-hkp §3.1.1)', async (t) => {
  const fpr = '0123456789ABCDEF0123456789ABCDEF01234567';
  t.same(parseHkpSearch(`0x${fpr.toLowerCase()}`, false), { fingerprint: fpr });
  t.same(parseHkpSearch(fpr, false), { fingerprint: fpr }, 'the 0x may be left out');
  t.same(parseHkpSearch('0x89abcdef01234567', false), { keyId: '89ABCDEF01234567' });
  throwsCode(t, () => parseHkpSearch('0x01234567', false), 'BAD_REQUEST', 'short key IDs are refused');
  throwsCode(t, () => parseHkpSearch('0x' + 'a'.repeat(32), false), 'BAD_REQUEST', 'v3 fingerprints are refused');
  t.same(parseHkpSearch('<DomainKey@Example.ORG>', false), { address: 'DomainKey@example.org' });
  t.same(parseHkpSearch('domainkey@example.org', true), { address: 'domainkey@example.org' }, 'exact=on with an address');
  t.same(parseHkpSearch('domainkey@example.org', false), { text: 'domainkey@example.org', exact: false });
  t.same(parseHkpSearch('  mailmesh ', true), { text: 'mailmesh', exact: true });
  t.same(parseHkpSearch('cafe', false), { text: 'cafe', exact: false }, 'a short bare hex string is text');
  throwsCode(t, () => parseHkpSearch('<not an address>', false), 'ADDRESS_INVALID');
  throwsCode(t, () => parseHkpSearch('   ', false), 'BAD_REQUEST');
  throwsCode(t, () => parseHkpSearch('x'.repeat(257), false), 'BAD_REQUEST');
});

t.test('property: parseHkpSearch answers a query or a stable error, never anything else', async (t) => {
  const alphabet = '0x0123456789abcdefABCDEF@<>. -_é:%';
  for (let i = 0; i < 3000; i++) {
    const s = randomText(alphabet, 50);
    try {
      const q = parseHkpSearch(s, rnd() < 0.5);
      const keys = Object.keys(q).sort().join(',');
      if (!['fingerprint', 'keyId', 'address', 'exact,text'].includes(keys)) t.fail(`${JSON.stringify(s)} → ${keys}`);
    } catch (e) {
      if (!isMailmeshError(e, 'BAD_REQUEST') && !isMailmeshError(e, 'ADDRESS_INVALID')) t.fail(`${JSON.stringify(s)} threw ${e}`);
    }
  }
  t.pass('3000 random search strings');
});

t.test('index fields are %-escaped (GnuPG doc/KEYSERVER)', async (t) => {
  t.equal(escapeIndexField('a domain key <domainkey@example.org>'), 'a domain key <domainkey@example.org>');
  t.equal(escapeIndexField('x:y%z'), 'x%3Ay%25z');
  t.equal(escapeIndexField('Jörg\n'), 'J%C3%B6rg%0A', 'UTF-8 bytes and controls');
  for (let i = 0; i < 500; i++) {
    const s = randomText('ab:%\u00e9\u4e2d\n ~', 20);
    const e = escapeIndexField(s);
    if (!/^[\x20-\x7e]*$/.test(e) || e.includes(':')) t.fail(`${JSON.stringify(s)} → ${e}`);
    if (decodeURIComponent(e) !== s) t.fail(`not reversible: ${JSON.stringify(s)}`);
  }
});
