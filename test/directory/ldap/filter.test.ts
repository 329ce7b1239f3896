import ldap from 'ldapjs';
import t from 'tap';
import type { Domain } from '../../../directory/domain.js';
import type { LdapEntry } from '../../../directory/ldap/entries.js';
import { evaluate, type FilterNode, type Truth } from '../../../directory/ldap/filter.js';
import { seeded } from '../../helpers.js';

const parse = (s: string) => (ldap as unknown as { parseFilter(s: string): FilterNode }).parseFilter(s);

const entry = (domain: string): LdapEntry => ({
  dn: `mail=domainkey@${domain},dc=mailmesh`,
  key: `mail=domainkey@${domain},dc=mailmesh`,
  parentKey: 'dc=mailmesh',
  domain: domain as Domain,
  attributes: [
    { type: 'objectClass', values: ['top', 'inetOrgPerson', 'mailmeshDomainKey'] },
    { type: 'mail', values: [`domainkey@${domain}`] },
    { type: 'cn', values: [`${domain} domain key`] },
    { type: 'userCertificate;binary', values: [Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])] },
    { type: 'pgpKey', values: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'] },
  ],
});
const A = entry('example.org');
const B = entry('beta.example');

t.test('matching rules and the mail extension', async (t) => {
  const cases: [string, LdapEntry, Truth][] = [
    ['(mail=alice@example.org)', A, 'TRUE'],
    ['(mail=ALICE@Example.ORG)', A, 'TRUE'],
    ['(mail=alice@example.org)', B, 'FALSE'],
    ['(mail=alice@sub.example.org)', A, 'FALSE'],
    ['(mail=example.org)', A, 'FALSE'],
    ['(mail=DomainKey@EXAMPLE.org)', A, 'TRUE'],
    ['(mail~=x@example.org)', A, 'TRUE'],
    ['(cn=  EXAMPLE.ORG   domain  KEY )', A, 'TRUE'],
    ['(objectClass=MailmeshDomainKey)', A, 'TRUE'],
    ['(cn=ex*or*key)', A, 'TRUE'],
    ['(cn=*key*key)', A, 'FALSE'],
    ['(cn=exam*ample*)', A, 'FALSE'],
    ['(cn=example.org domain key*)', A, 'TRUE'],
    ['(sn=*)', A, 'FALSE'],
    ['(usercertificate=*)', A, 'TRUE'],
    ['(userCertificate=x)', A, 'UNDEFINED'],
    ['(pgpKey=-----BEGIN PGP PUBLIC KEY BLOCK-----)', A, 'UNDEFINED'],
    ['(unknownAttr=x)', A, 'UNDEFINED'],
    ['(unknownAttr=*)', A, 'FALSE'],
    ['(cn>=a)', A, 'UNDEFINED'],
    ['(cn:caseExactMatch:=x)', A, 'UNDEFINED'],
    ['(&(cn=x)(unknownAttr=x))', A, 'FALSE'],
    ['(&(mail=a@example.org)(unknownAttr=x))', A, 'UNDEFINED'],
    ['(|(mail=a@example.org)(unknownAttr=x))', A, 'TRUE'],
    ['(|(cn=x)(unknownAttr=x))', A, 'UNDEFINED'],
    ['(!(unknownAttr=x))', A, 'UNDEFINED'],
    ['(!(mail=a@beta.example))', A, 'TRUE'],
  ];
  for (const [f, e, want] of cases) t.equal(evaluate(parse(f), e), want, `${f} on ${e.domain}`);
  t.equal(evaluate({ type: 'PresenceFilter', attribute: 'userCertificate;binary' }, A), 'TRUE', 'an attribute description with options names its type');
});

t.test('property: three-valued logic laws hold on random filters; evaluation never throws', async (t) => {
  const rnd = seeded(4511);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const leaf = () =>
    pick([
      () => `(${pick(['mail', 'cn', 'objectClass', 'pgpKey', 'userCertificate', 'foo', 'sn'])}=*)`,
      () => `(mail=${pick(['a', 'B.c', 'domainkey'])}@${pick(['example.org', 'EXAMPLE.ORG', 'beta.example', 'other.test'])})`,
      () => `(cn=${pick(['*key', 'ex*', '*a*', 'example.org domain key', 'x'])})`,
      () => `(objectClass=${pick(['top', 'person', 'INETORGPERSON'])})`,
      () => `(${pick(['userCertificate', 'foo', 'pgpKey'])}=v)`,
      () => `(cn${pick(['>=', '<=', '~='])}example.org domain key)`,
    ])();
  const gen = (d: number): string => {
    if (d === 0 || rnd() < 0.35) return leaf();
    const k = pick(['&', '|', '!']);
    return k === '!' ? `(!${gen(d - 1)})` : `(${k}${gen(d - 1)}${gen(d - 1)})`;
  };
  const ev = (s: string, e: LdapEntry) => evaluate(parse(s), e);
  const not = (v: Truth): Truth => (v === 'TRUE' ? 'FALSE' : v === 'FALSE' ? 'TRUE' : 'UNDEFINED');
  let failures = 0;
  for (let i = 0; i < 500 && failures < 5; i++) {
    const f = gen(4);
    const g = gen(3);
    for (const e of [A, B]) {
      const laws: [string, boolean][] = [
        ['NOT flips', ev(`(!${f})`, e) === not(ev(f, e))],
        ['De Morgan', ev(`(!(&${f}${g}))`, e) === ev(`(|(!${f})(!${g}))`, e)],
        ['AND commutes', ev(`(&${f}${g})`, e) === ev(`(&${g}${f})`, e)],
        ['OR commutes', ev(`(|${f}${g})`, e) === ev(`(|${g}${f})`, e)],
        ['absorption', ev(`(&${f}(|${f}${g}))`, e) === ev(f, e)],
        ['idempotent', ev(`(&${f}${f})`, e) === ev(f, e) && ev(`(|${f}${f})`, e) === ev(f, e)],
        ['excluded middle is never FALSE', ev(`(|${f}(!${f}))`, e) !== 'FALSE'],
      ];
      for (const [law, holds] of laws) {
        if (!holds) {
          failures++;
          t.fail(`${law}: f=${f} g=${g} on ${e.domain}`);
        }
      }
    }
  }
  t.equal(failures, 0, 'every law held on 500 random filter pairs');
});
