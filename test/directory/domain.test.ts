import t from 'tap';
import { domainKeyAddress, formatAddress, isDomain, parseAddress, parseDomain } from '../../directory/domain.js';
import { isMailmeshError } from '../../directory/errors.js';
import { throwsCode } from '../helpers.js';

t.test('domains are normalised: IDNA to ASCII, lower case, no trailing dot', async (t) => {
  t.equal(parseDomain('Example.ORG'), 'example.org');
  t.equal(parseDomain('example.org.'), 'example.org');
  t.equal(parseDomain('  bücher.example '), 'xn--bcher-kva.example');
  t.equal(parseDomain('XN--BCHER-KVA.example'), 'xn--bcher-kva.example');
  t.equal(parseDomain('demo.mailmesh.test'), 'demo.mailmesh.test');
});

t.test('invalid domains are refused with DOMAIN_INVALID', async (t) => {
  for (const bad of ['', 'localhost', '-a.example', 'a-.example', 'a..example', 'a b.example', 'a@b.example', 'x.' + 'a'.repeat(64) + '.org',
    'a.'.repeat(127) + 'org', '1.2.3.4', 'http://example.org', 'example.org/x', 'ex_ample.org']) {
    throwsCode(t, () => parseDomain(bad), 'DOMAIN_INVALID', JSON.stringify(bad));
    t.notOk(isDomain(bad));
  }
  throwsCode(t, () => parseDomain(42 as unknown as string), 'DOMAIN_INVALID');
});

t.test('addresses keep the local part and normalise the domain', async (t) => {
  t.same(parseAddress('Joe.Doe@Example.ORG'), { local: 'Joe.Doe', domain: 'example.org' });
  t.same(parseAddress('<alice@bücher.example>'), { local: 'alice', domain: 'xn--bcher-kva.example' });
  t.equal(formatAddress(parseAddress('ünïcode@example.org')), 'ünïcode@example.org');
  t.equal(formatAddress(domainKeyAddress(parseDomain('example.org'))), 'domainkey@example.org');
  for (const bad of ['', '@example.org', 'alice@', 'alice', 'a b@example.org', '.a@example.org', 'a.@example.org', 'a..b@example.org',
    'x'.repeat(65) + '@example.org', 'alice@localhost', 'al\x01ice@example.org']) {
    throwsCode(t, () => parseAddress(bad), 'ADDRESS_INVALID', JSON.stringify(bad));
  }
});

t.test('property: parseDomain is idempotent on what it accepts', async (t) => {
  const alphabet = 'abcXYZ09-.ü';
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 2000; i++) {
    const s = Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
    let d: string;
    try {
      d = parseDomain(s);
    } catch (e) {
      if (!isMailmeshError(e, 'DOMAIN_INVALID')) t.fail(`unexpected error for ${JSON.stringify(s)}: ${e}`);
      continue;
    }
    t.equal(parseDomain(d), d, `idempotent for ${JSON.stringify(s)}`);
    t.match(d, /^[a-z0-9.-]+$/);
  }
});

t.test('a top-level domain only where a zone apex may be one (minLabels: 1)', async (t) => {
  throwsCode(t, () => parseDomain('test'), 'DOMAIN_INVALID', 'not a mail domain');
  t.equal(parseDomain('TEST.', { minLabels: 1 }), 'test');
  throwsCode(t, () => parseDomain('123', { minLabels: 1 }), 'DOMAIN_INVALID', 'a numeric TLD is still refused');
  throwsCode(t, () => parseDomain('-x', { minLabels: 1 }), 'DOMAIN_INVALID');
});
