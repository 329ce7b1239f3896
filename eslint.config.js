// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PROTOCOL_LIBRARIES = ['fastify', 'fastify/*', '@fastify/*', 'dns2', 'ldapjs', 'smtp-server', 'ioredis', 'better-sqlite3'];
const restrict = (patterns, message) => ({ group: patterns, message });
/** `x.store`, `x?.store`, `x['store']` and `{ store } = x`: what a face must not do to reach the store past the Directory. */
const FACE_STORE_ACCESS = [
  "MemberExpression[property.name='store']",
  "MemberExpression[property.value='store']",
  "ObjectPattern > Property[key.name='store']",
].map((selector) => ({ selector, message: 'faces use the Directory (lookups, serial(), ping(), storeKind), never directory.store' }));
/** The faces' internals: federation/ and gateway/ use the directory through its core (directory/*.ts). */
const FACE_INTERNALS = ['**/directory/http/*', '**/directory/dns/*', '**/directory/ldap/*'];
const FACE_MESSAGE = 'federation/ and gateway/ import the directory core, not a face: move what is shared into directory/*.ts';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.tap/', '.fuzz-build/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // docs/architecture.md "Rules lint enforces": small rooms in the product code (tests, benches and fuzz targets are exempt).
    files: ['cli/**/*.ts', 'directory/**/*.ts', 'federation/**/*.ts', 'gateway/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400, skipBlankLines: false, skipComments: false }],
      'max-lines-per-function': ['error', { max: 120, skipBlankLines: false, skipComments: false }],
    },
  },
  {
    // docs/architecture.md: the directory core knows no protocol library; nothing imports cli/.
    files: ['directory/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        restrict(PROTOCOL_LIBRARIES, 'directory core files import no protocol library: put it in a face (http/, dns/, ldap/) or store/'),
        restrict(['./http/*', './dns/*', './ldap/*', '../cli/*', '../federation/*', '../gateway/*'], 'the core imports none of its faces, and nothing above it'),
      ] }],
    },
  },
  {
    // Faces import the core, never each other.
    files: ['directory/http/**/*.ts', 'directory/dns/**/*.ts', 'directory/ldap/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        restrict(['../http/*', '../dns/*', '../ldap/*', '../../cli/*', '../../federation/*', '../../gateway/*'], 'faces import the core, never each other'),
      ] }],
      // Faces go through the Directory (lookups, serial, ping, storeKind), never its store.
      'no-restricted-syntax': ['error', ...FACE_STORE_ACCESS],
    },
  },
  {
    files: ['federation/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [
      restrict(['**/gateway/*', '**/cli/*'], 'federation/ imports directory/ only'),
      restrict(FACE_INTERNALS, FACE_MESSAGE),
    ] }] },
  },
  {
    files: ['gateway/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [
      restrict(['**/cli/*'], 'nothing imports cli/'),
      restrict(FACE_INTERNALS, FACE_MESSAGE),
    ] }] },
  },
  {
    // WebMail's pages are routes of the HTTP face (createHttpServer's `webmail` option): they answer
    // with the face's error mapping, from its entry file (directory/http/http.ts), and nothing else of a face.
    files: ['gateway/webmail/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [
      restrict(['**/cli/*'], 'nothing imports cli/'),
      restrict([...FACE_INTERNALS, '!**/directory/http/http.js'], FACE_MESSAGE),
    ] }] },
  },
);
