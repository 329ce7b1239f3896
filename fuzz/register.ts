// `node --import <this file>`: registers the instrumenting loader (hooks.ts) for the product's
// compiled directory/, gateway/ and federation/ modules before any of them is imported.
import { register } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const build = dirname(dirname(fileURLToPath(import.meta.url)));
register('./hooks.js', import.meta.url, { data: { roots: ['directory', 'gateway', 'federation'].map((d) => join(build, d) + '/') } });
