import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { baseEntry, buildEntries, checkBase } from '../../../directory/ldap/entries.js';
import { foldLine, ldifLine, renderLdif } from '../../../directory/ldap/ldif.js';
import { renderSchemaFile } from '../../../directory/ldap/schema.js';
import { seeded, tempDir, throwsCode } from '../../helpers.js';
import { parseLdif, runText as run } from './helpers.js';

t.test('RFC 2849 value encoding: SAFE-STRING as text, anything else base64', async (t) => {
  t.equal(ldifLine('cn', 'example.org domain key'), 'cn: example.org domain key');
  t.equal(ldifLine('cn', ''), 'cn: ', 'the empty value');
  for (const unsafe of [' leading space', ':colon', '<less', 'trailing space ', 'two\nlines', 'cr\r', 'nul\0', 'é non-ASCII']) {
    t.equal(ldifLine('cn', unsafe), `cn:: ${Buffer.from(unsafe).toString('base64')}`, JSON.stringify(unsafe));
  }
  t.equal(ldifLine('userCertificate;binary', Buffer.from('ab')), 'userCertificate;binary:: YWI=', 'binary is always base64');
  t.equal(foldLine('x'.repeat(76)), 'x'.repeat(76), '76 columns stay on one line');
  t.equal(foldLine('x'.repeat(77)), 'x'.repeat(76) + '\n x', 'longer lines fold with one leading space');
});

t.test('property: rendered LDIF unfolds and decodes to the same values, lines ≤ 76 columns', async (t) => {
  const rnd = seeded(2849);
  const alphabet = ['a', 'Z', '0', ' ', ':', '<', '=', ',', '\n', '\r', '\0', 'é', '€', '😀', '#', '-'];
  for (let i = 0; i < 300; i++) {
    const values: (string | Buffer)[] = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () =>
      rnd() < 0.3
        ? Buffer.from(Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)))
        : Array.from({ length: Math.floor(rnd() * 200) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''),
    );
    const text = renderLdif([{ dn: `cn=e${i},dc=mailmesh`, attributes: [{ type: 'description', values }] }], `case ${i}`);
    t.ok(text.split('\n').every((l) => l.length <= 76), `case ${i}: folded`);
    const [entry] = parseLdif(text);
    const got = (entry?.attrs.get('description') ?? []).map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)));
    const want = values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)));
    if (!t.same(got.map((b) => b.toString('hex')), want.map((b) => b.toString('hex')), `case ${i}: round trip`)) break;
  }
});

t.test('base DNs: dc=, o= or ou= first; others are refused with CONFIG_INVALID', async (t) => {
  t.same(baseEntry('ou=keys, o=Acme').attributes, [
    { type: 'objectClass', values: ['top', 'organizationalUnit'] },
    { type: 'ou', values: ['keys'] },
  ]);
  t.equal(baseEntry('dc=mailmesh').attributes[0]!.values[1], 'domain');
  t.equal(checkBase('DC=Mail,  DC=Example'), 'DC=Mail,DC=Example', 'normalised');
  for (const bad of ['', 'cn=x,dc=y', 'dc=a+o=b', 'not a dn', 'dc=x,=y']) throwsCode(t, () => checkBase(bad), 'CONFIG_INVALID', JSON.stringify(bad));
  t.same(buildEntries([], 'dc=mailmesh').map((e) => e.dn), ['dc=mailmesh'], 'no domains: only the base');
});

/** Writes a slapd.conf for an mdb database under `dir`, with the given schema includes. */
function slapdConf(dir: string, includes: string[]): string {
  mkdirSync(join(dir, 'db'), { recursive: true });
  const conf = join(dir, 'slapd.conf');
  writeFileSync(conf, [
    ...includes.map((f) => `include ${f}`),
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    `pidfile ${join(dir, 'slapd.pid')}`,
    'database mdb',
    'suffix "dc=mailmesh"',
    `directory ${join(dir, 'db')}`,
    'maxsize 10485760',
    '',
  ].join('\n'));
  return conf;
}

const STOCK_SCHEMA = ['core', 'cosine', 'inetorgperson'].map((n) => `/etc/ldap/schema/${n}.schema`);

t.test('`mailmesh ldap export` and `ldap schema` feed OpenLDAP: slapadd accepts them (slapd.conf and cn=config)', async (t) => {
  const dir = tempDir(t);
  // The built CLI, as `npm start` runs it (npm test builds first).
  const env = { ...process.env, MAILMESH_DATA_DIR: join(dir, 'data'), MAILMESH_KEYS__VALID_DAYS: '365', MAILMESH_LOG__LEVEL: 'silent' };
  const cli = (...args: string[]) => run(process.execPath, [new URL('../../../dist/cli/main.js', import.meta.url).pathname, ...args], env);
  const added = await cli('domain', 'add', 'example.org');
  t.equal(added.code, 0, added.stderr);
  const shown = await cli('domain', 'show', 'example.org', '--json');
  const record = JSON.parse(shown.stdout) as { keys: { smime: { fingerprint: string }; openpgp: { fingerprint: string } } };
  const ldif = join(dir, 'export.ldif');
  const schema = join(dir, 'mailmesh.schema');
  const schemaLdif = join(dir, 'mailmesh.ldif');
  // (Each CLI start compiles TypeScript: the slapd.conf schema file is written in-process, from the same function the CLI calls.)
  writeFileSync(schema, renderSchemaFile());
  for (const [args, file] of [[['ldap', 'export', '--out', ldif], ldif], [['ldap', 'schema', '--format', 'ldif', '--out', schemaLdif], schemaLdif]] as const) {
    const r = await cli(...args);
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    t.ok(readFileSync(file, 'utf8').length > 0, `${file} written`);
  }
  const text = readFileSync(ldif, 'utf8');
  t.match(text, /^# mailmesh LDAP export: 2 entries/, 'a header comment');
  t.ok(text.split('\n').every((l) => l.length <= 76), 'folded at 76 columns');
  t.same(parseLdif(text).map((e) => e.dn), ['dc=mailmesh', 'mail=domainkey@example.org,dc=mailmesh']);

  // Without the mailmesh schema slapd refuses the entries: the schema is what makes them valid.
  const bare = join(dir, 'bare');
  const refused = await run('slapadd', ['-f', slapdConf(bare, STOCK_SCHEMA), '-l', ldif]);
  t.not(refused.code, 0, 'slapadd without the mailmesh schema fails');
  t.match(refused.stderr, /mailmeshDomainKey|pgpKey|pgpCertID/, refused.stderr.split('\n').find((l) => /error|invalid|unrecognized/i.test(l)) ?? '');

  const withConf = join(dir, 'conf');
  const conf = slapdConf(withConf, [...STOCK_SCHEMA, schema]);
  const added1 = await run('slapadd', ['-f', conf, '-l', ldif]);
  t.equal(added1.code, 0, `slapadd -f: ${added1.stderr}`);
  const cat = await run('slapcat', ['-f', conf, '-o', 'ldif-wrap=no']);
  t.equal(cat.code, 0, cat.stderr);
  const stored = parseLdif(cat.stdout).find((e) => e.dn === 'mail=domainkey@example.org,dc=mailmesh');
  t.ok(stored, 'the domain entry is in the database');
  const der = stored?.attrs.get('userCertificate;binary')?.[0];
  t.equal(der && createHash('sha256').update(der).digest('hex'), record.keys.smime.fingerprint, 'the certificate went in as DER');
  t.match(String(stored?.attrs.get('pgpKey')?.[0]), /BEGIN PGP PUBLIC KEY BLOCK/);

  // cn=config: build a config directory with slapadd -n0, the mailmesh schema LDIF included.
  const cfg = join(dir, 'cfg');
  const cfgDb = join(dir, 'cfgdb');
  mkdirSync(cfg);
  mkdirSync(cfgDb);
  const configLdif = join(dir, 'config.ldif');
  writeFileSync(configLdif, [
    'dn: cn=config', 'objectClass: olcGlobal', 'cn: config', '',
    'dn: cn=module{0},cn=config', 'objectClass: olcModuleList', 'cn: module{0}', 'olcModulePath: /usr/lib/ldap', 'olcModuleLoad: back_mdb', '',
    'dn: cn=schema,cn=config', 'objectClass: olcSchemaConfig', 'cn: schema', '',
    ...['core', 'cosine', 'inetorgperson'].map((n) => `include: file:///etc/ldap/schema/${n}.ldif\n`),
    `include: file://${schemaLdif}`, '',
    'dn: olcDatabase={1}mdb,cn=config', 'objectClass: olcDatabaseConfig', 'objectClass: olcMdbConfig', 'olcDatabase: {1}mdb',
    'olcSuffix: dc=mailmesh', `olcDbDirectory: ${cfgDb}`, 'olcDbMaxSize: 10485760', '',
  ].join('\n'));
  const config = await run('slapadd', ['-n0', '-F', cfg, '-l', configLdif]);
  t.equal(config.code, 0, `slapadd -n0: ${config.stderr}`);
  const added2 = await run('slapadd', ['-F', cfg, '-b', 'dc=mailmesh', '-l', ldif]);
  t.equal(added2.code, 0, `slapadd -F: ${added2.stderr}`);
  const cat2 = await run('slapcat', ['-F', cfg, '-b', 'dc=mailmesh', '-a', '(pgpCertID=*)', '-o', 'ldif-wrap=no']);
  t.same(parseLdif(cat2.stdout).map((e) => e.dn), ['mail=domainkey@example.org,dc=mailmesh'], 'pgpCertID is a known, searchable attribute');
});
