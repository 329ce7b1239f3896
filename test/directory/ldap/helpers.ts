import type { Test } from 'tap';
import type { Directory } from '../../../directory/directory.js';
import { LdapServer, type LdapServerOptions } from '../../../directory/ldap/ldap.js';
import { run } from '../../helpers.js';

/** A real LDAP face on port 0, closed when the test ends. */
export async function startLdap(t: Test, directory: Directory, opts: Partial<LdapServerOptions> = {}): Promise<{ server: LdapServer; port: number; url: string }> {
  const server = await LdapServer.create({ directory, ...opts });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, port, url: `ldap://127.0.0.1:${port}` };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client and returns its exit code and text output, whatever the code. */
export async function runText(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Run> {
  const r = await run(cmd, args, { env, allowFail: true });
  return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
}

/** ldapsearch, anonymous simple bind, LDIF without comments or version line, no line wrapping. */
export function ldapsearch(url: string, base: string, filter: string, attrs: string[] = [], extra: string[] = []): Promise<Run> {
  return runText('ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', url, '-b', base, ...extra, filter, ...attrs]);
}

/** Parses ldapsearch -LLL output (unwrapped) into entries: dn and attribute → values, base64 values decoded to Buffers. */
export function parseLdif(text: string): { dn: string; attrs: Map<string, (string | Buffer)[]> }[] {
  const out: { dn: string; attrs: Map<string, (string | Buffer)[]> }[] = [];
  for (const block of text.replace(/\n /g, '').split(/\n\n+/)) {
    const lines = block.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('version:'));
    if (lines.length === 0) continue;
    const attrs = new Map<string, (string | Buffer)[]>();
    let dn = '';
    for (const line of lines) {
      const m = /^([^:]+)(::?) ?(.*)$/.exec(line);
      if (!m) throw new Error(`not an LDIF line: ${line}`);
      const value: string | Buffer = m[2] === '::' ? Buffer.from(m[3]!, 'base64') : m[3]!;
      if (m[1] === 'dn') dn = value.toString();
      else attrs.set(m[1]!, [...(attrs.get(m[1]!) ?? []), value]);
    }
    out.push({ dn, attrs });
  }
  return out;
}
