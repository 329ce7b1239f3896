import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { asMailmeshError, CATALOGUE, isMailmeshError, MailmeshError, registerCodes, type ErrorCode } from '../../directory/errors.js';

// The catalogue's base (directory/errors.ts) and the gateway's codes on it (gateway/errors.ts).
// This file imports nothing of gateway/ before the test that loads it.

const ROOT = new URL('../../', import.meta.url).pathname;

t.test('a gateway code is not registered until gateway/errors.ts is loaded: constructing it fails clearly', async (t) => {
  t.notOk('TUNNEL_MALFORMED' in CATALOGUE, 'not in the directory catalogue');
  t.throws(() => new MailmeshError('TUNNEL_MALFORMED' as ErrorCode, 'x'), { name: 'TypeError', message: /TUNNEL_MALFORMED is not registered/ });
  t.throws(() => new MailmeshError('toString' as ErrorCode), { name: 'TypeError' }, 'no code from the prototype');
  t.notOk('toString' in CATALOGUE, 'the catalogue has no prototype');

  const gw = await import('../../gateway/errors.js');
  const e = new gw.MailmeshError('TUNNEL_MALFORMED', 'OpenPGP message: a library said so');
  t.ok(e instanceof MailmeshError, 'the same base class');
  t.ok(isMailmeshError(e, 'TUNNEL_MALFORMED'));
  t.equal(e.kind, 'invalid');
  t.equal(asMailmeshError(e), e);
  t.equal(e.publicMessage, 'the tunnel message is malformed', 'the catalogue text, not the detail');
  t.throws(() => registerCodes({ TUNNEL_MALFORMED: { kind: 'invalid', message: 'again' } }), { message: /registered twice: TUNNEL_MALFORMED/ });
  t.throws(() => registerCodes({ INTERNAL: { kind: 'internal', message: 'again' } }), { message: /registered twice: INTERNAL/ });
});

t.test('publicMessage: the catalogue text; the detail only for public codes; INTERNAL text for a fault', async (t) => {
  t.equal(new MailmeshError('STORE_UNAVAILABLE', 'redis: connect ECONNREFUSED 127.0.0.1:6379').publicMessage, CATALOGUE.STORE_UNAVAILABLE.message);
  t.equal(new MailmeshError('BAD_REQUEST', 'Unexpected token').publicMessage, CATALOGUE.BAD_REQUEST.message);
  t.equal(new MailmeshError('UNAUTHORIZED', 'wrong token').publicMessage, 'a valid bearer token is needed', 'said once');
  t.equal(new MailmeshError('SEALED_DATA_CORRUPT', 'tag mismatch').publicMessage, CATALOGUE.INTERNAL.message);
  t.equal(asMailmeshError(new Error('boom')).publicMessage, CATALOGUE.INTERNAL.message);
  const held = new MailmeshError('DOMAIN_HELD', 'a.test is held by ABCD');
  t.equal(held.publicMessage, `${CATALOGUE.DOMAIN_HELD.message}: a.test is held by ABCD`, 'a public code keeps its detail');
  t.equal(new MailmeshError('DOMAIN_HELD').publicMessage, CATALOGUE.DOMAIN_HELD.message);
  t.equal(new MailmeshError('STORE_UNAVAILABLE', 'x').message, `${CATALOGUE.STORE_UNAVAILABLE.message}: x`, 'message keeps the detail (logs, the CLI)');
});

/** Every .ts file under a folder of the project. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, dir, f));
}

t.test('directory/ and federation/ never name a gateway code, and never import gateway/', async (t) => {
  const gw = readFileSync(join(ROOT, 'gateway/errors.ts'), 'utf8');
  const codes = [...gw.matchAll(/^ {2}([A-Z][A-Z_]+): \{/gm)].map((m) => m[1]!);
  t.ok(codes.length >= 20, `the gateway catalogue (${codes.length} codes)`);
  const named = new RegExp(`'(${codes.join('|')})'`);
  for (const file of [...sources('directory'), ...sources('federation')]) {
    const text = readFileSync(file, 'utf8');
    const hit = named.exec(text)?.[1];
    t.notOk(hit, `${file.slice(ROOT.length)}${hit ? ` names ${hit}` : ''}`);
    if (file.includes('/directory/')) t.notMatch(text, /from '(\.\.\/)+gateway\//, `${file.slice(ROOT.length)} imports no gateway module`);
  }
});
