// The contradictions the appliance work named, kept fixed: the pins default and `webmail.registered` as the
// schema has them in README and the part's page, no reference to a design document outside the repository, the LICENSE text.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../cli/config.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const doc = (f: string) => readFileSync(join(ROOT, f), 'utf8');
/** The default column of a key's row in a Markdown configuration table. */
const defaultOf = (text: string, key: string) => new RegExp(`^\\| \`${key.replace(/\./g, '\\.')}\` \\| ([^|]*) \\|`, 'm').exec(text)?.[1]?.trim();
const defaults = loadConfig({ env: {}, cwd: '/nonexistent' });

t.test('federation.pinsFile: unset by default (the pins are in the store), in README and docs/federation.md', async (t) => {
  t.equal(defaults.federation.pinsFile, undefined);
  t.equal(defaultOf(doc('README.md'), 'federation.pinsFile'), '—');
  t.equal(defaultOf(doc('docs/federation.md'), 'federation.pinsFile'), 'unset');
});

t.test('webmail.registered is a setting, documented as one in README and docs/webmail.md', async (t) => {
  t.equal(defaults.webmail.registered, false);
  t.equal(loadConfig({ env: { MAILMESH_WEBMAIL__REGISTERED: 'true' }, cwd: '/nonexistent' }).webmail.registered, true);
  t.equal(defaultOf(doc('README.md'), 'webmail.registered'), '`false`');
  t.equal(defaultOf(doc('docs/webmail.md'), 'webmail.registered'), '`false`');
  t.notMatch(doc('docs/webmail.md'), /no\s+configuration key/, 'no page says it is missing');
});

// The name is spelled in two parts, so this guard is not itself a match.
const OUTSIDE_DOC = ['DESIGN', 'md'].join('\\.');

t.test('no tracked file points to the design document outside the repository', async (t) => {
  // git grep exits 1 when nothing matches, 0 with matches, more on an error.
  const r = spawnSync('git', ['grep', '-n', '-I', OUTSIDE_DOC, '--', '.', ':!test/packaging/docs.test.ts'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(r.status, 1, r.stdout || r.stderr || 'no match');
});

t.test('LICENSE is the Apache License 2.0 that package.json names', async (t) => {
  const text = doc('LICENSE');
  t.equal((JSON.parse(doc('package.json')) as { license: string }).license, 'Apache-2.0');
  t.match(text, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
  for (let section = 1; section <= 9; section++) t.match(text, new RegExp(`^\\s+${section}\\. \\w`, 'm'), `section ${section}`);
  t.match(text, 'END OF TERMS AND CONDITIONS');
});

t.test('docs/gateway.md documents every fallback the policy schema accepts', async (t) => {
  const page = doc('docs/gateway.md');
  const schema = doc('cli/config/policy.ts');
  const fallbacks = /const FALLBACKS = \[([^\]]*)\]/.exec(schema)?.[1]?.match(/'([a-z]+)'/g)?.map((s) => s.slice(1, -1)) ?? [];
  t.ok(fallbacks.length >= 4, `the schema's fallbacks: ${fallbacks.join(', ')}`);
  for (const f of fallbacks) t.match(page, new RegExp(`\`${f}\``), `docs/gateway.md names the ${f} fallback`);
});

t.test('every image tag in the docs is the package version', async (t) => {
  const version = (JSON.parse(doc('package.json')) as { version: string }).version;
  for (const f of ['README.md', 'docs/install.md']) {
    const tags = [...doc(f).matchAll(/mailmesh:(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
    t.ok(tags.length > 0, `${f} names an image`);
    for (const tag of tags) t.equal(tag, version, `${f}: mailmesh:${tag}`);
  }
});
