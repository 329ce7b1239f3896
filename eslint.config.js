// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PROTOCOL_LIBRARIES = ['fastify', 'fastify/*', '@fastify/*', 'dns2', 'ldapjs', 'smtp-server', 'nodemailer', 'ioredis', 'better-sqlite3'];
const restrict = (patterns, message) => ({ group: patterns, message });
/** `x.store`, `x?.store`, `x['store']` and `{ store } = x`: what a face must not do to reach the store past the Directory. */
const FACE_STORE_ACCESS = [
  "MemberExpression[property.name='store']",
  "MemberExpression[property.value='store']",
  "ObjectPattern > Property[key.name='store']",
].map((selector) => ({ selector, message: 'faces use the Directory (lookups, serial(), ping(), storeKind), never directory.store' }));

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
    rules: { 'no-restricted-imports': ['error', { patterns: [restrict(['**/gateway/*', '**/cli/*'], 'federation/ imports directory/ only')] }] },
  },
  {
    files: ['gateway/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [restrict(['**/cli/*'], 'nothing imports cli/')] }] },
  },
);
