// The fuzz targets, by name: one file per target under fuzz/targets/.
export const TARGETS = [
  'dns-wire',
  'dns-handler',
  'ldap-ber',
  'ldap-filter',
  'ldap-request',
  'mime',
  'classify',
  'cms-envelope',
  'cms-signed',
  'openpgp-key',
  'signed-record',
  'webmail-form',
  'smtp-command',
  'smtp-reply',
] as const;

export type TargetName = (typeof TARGETS)[number];

export async function loadTarget(name: string): Promise<import('./target.js').FuzzTarget> {
  if (!(TARGETS as readonly string[]).includes(name)) throw new Error(`no fuzz target ${name}; targets: ${TARGETS.join(', ')}`);
  return ((await import(`./targets/${name}.js`)) as { default: import('./target.js').FuzzTarget }).default;
}
