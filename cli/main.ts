#!/usr/bin/env node
import { existsSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { asMailmeshError } from '../directory/errors.js';
import { pemToDer } from '../directory/smime.js';
import type { DomainRecord } from '../directory/record.js';
import { exportZone } from '../directory/dns/dns.js';
import { exportLdif, renderSchemaFile, renderSchemaLdif } from '../directory/ldap/ldap.js';
import { openDirectory, serve, zoneOptions } from './app.js';
import { loadConfig, maskedConfig, type Config } from './config.js';
import { createLogger } from './log.js';

const program = new Command('mailmesh')
  .description('E-Mail VPN: federated directory of domain keys and queue-less encrypting SMTP gateway')
  .option('-c, --config <file>', 'configuration file (default ./mailmesh.yaml, or $MAILMESH_CONFIG)')
  .showHelpAfterError();

function config(): Config {
  return loadConfig({ file: program.opts<{ config?: string }>().config, env: process.env, cwd: process.cwd() });
}

/** Runs a command with the directory open, and closes it afterwards. */
async function withDirectory<T>(f: (d: Awaited<ReturnType<typeof openDirectory>>) => Promise<T>): Promise<T> {
  const d = await openDirectory(config(), { createKey: true });
  try {
    return await f(d);
  } finally {
    await d.store.close();
  }
}

function summary(r: DomainRecord): string {
  return [
    `domain   ${r.domain}`,
    `status   ${r.status} (serial ${r.serial}, updated ${r.updated})`,
    `openpgp  ${r.keys.openpgp?.fingerprint ?? '-'} ${r.keys.openpgp?.algorithm ?? ''}`,
    `smime    ${r.keys.smime?.fingerprint ?? '-'} ${r.keys.smime?.subject ?? ''}`,
    `formats  ${r.formats.join(', ')}`,
  ].join('\n');
}

program
  .command('serve')
  .description('run the directory (embedded store; demo domain on first start) until Ctrl-C')
  .action(async () => {
    const c = config();
    const log = createLogger(c);
    const running = await serve(c, log);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

program
  .command('init')
  .description('write mailmesh.yaml with the defaults, create the master key and the store')
  .action(async () => {
    const c = config();
    const file = c.source ?? 'mailmesh.yaml';
    if (!c.source && !existsSync(file)) {
      writeFileSync(file, '# mailmesh configuration; every key is documented in README.md "Configuration".\n' +
        stringify({ dataDir: './data', http: { host: c.http.host, port: c.http.port }, demo: { domain: c.demo.domain } }));
      console.log(`wrote ${file}`);
    }
    await withDirectory(async (d) => {
      console.log(`store ${d.store.kind} ready (serial ${await d.store.serial()}), master key ${c.masterKey.value ? 'from the environment' : c.masterKey.file}`);
    });
  });

const domain = program.command('domain').description('member domains of this directory');
domain
  .command('add <domain>')
  .description('create a member domain with a new OpenPGP key and S/MIME certificate')
  .addOption(new Option('--format <formats...>', 'tunnel formats the domain accepts').choices(['pgp-mime', 'smime']))
  .option('--smtp <host:port...>', 'gateway SMTP endpoints for tunnel mail')
  .action(async (name: string, o: { format?: ('pgp-mime' | 'smime')[]; smtp?: string[] }) => {
    await withDirectory(async (d) => {
      const r = await d.addDomain(name, { formats: o.format, gateways: { smtp: o.smtp ?? [] } });
      console.log(summary(r));
    });
  });
domain
  .command('list')
  .description('list member domains')
  .option('--json', 'JSON output')
  .action(async (o: { json?: boolean }) => {
    await withDirectory(async (d) => {
      const all = await d.listDomains();
      if (o.json) return void console.log(JSON.stringify(all, null, 2));
      for (const r of all) console.log(`${r.domain}\t${r.status}\t${r.serial}\t${r.keys.openpgp?.fingerprint ?? '-'}\t${r.keys.smime?.fingerprint ?? '-'}`);
    });
  });
domain
  .command('show <domain>')
  .description('show a domain record (summary, or the whole record as JSON)')
  .option('--json', 'the whole record as JSON')
  .action(async (name: string, o: { json?: boolean }) => {
    await withDirectory(async (d) => {
      const r = await d.getRecord(name);
      console.log(o.json ? JSON.stringify(r, null, 2) : summary(r));
    });
  });
domain
  .command('export <domain>')
  .description('write a domain\'s public keys: the armored OpenPGP key, the PEM chain, the leaf as DER, or the record as JSON')
  .addOption(new Option('--what <what>', 'what to export').choices(['openpgp', 'smime', 'smime-der', 'json']).default('openpgp'))
  .option('-o, --out <file>', 'write to a file instead of stdout')
  .action(async (name: string, o: { what: string; out?: string }) => {
    await withDirectory(async (d) => {
      const r = await d.getRecord(name);
      const chain = r.keys.smime?.chain ?? [];
      const out: string | Buffer | undefined =
        o.what === 'openpgp' ? r.keys.openpgp?.armored
        : o.what === 'smime' ? chain.join('')
        : o.what === 'smime-der' ? chain[0] && pemToDer(chain[0])
        : JSON.stringify(r, null, 2) + '\n';
      if (!out) throw new Error(`${r.domain} has no ${o.what} key`);
      if (o.out) writeFileSync(o.out, out);
      else process.stdout.write(out);
    });
  });
domain
  .command('remove <domain>')
  .description('remove a member domain (its private keys are erased; a tombstone tells mirrors)')
  .action(async (name: string) => {
    await withDirectory(async (d) => {
      const r = await d.removeDomain(name);
      console.log(`removed ${r.domain} (serial ${r.serial})`);
    });
  });

program
  .command('zone')
  .description('the DNS zones this directory serves (docs/dns.md)')
  .command('export')
  .description('write a zone in RFC 1035 master-file form (for kzonecheck, NSD, BIND, Knot)')
  .option('--zone <name>', 'dns.zone (default) or one of dns.authoritativeFor')
  .option('-o, --out <file>', 'write to a file instead of stdout')
  .action(async (o: { zone?: string; out?: string }) => {
    const c = config();
    await withDirectory(async (d) => {
      const text = await exportZone(d, zoneOptions(c), o.zone);
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
    });
  });

const ldapCmd = program.command('ldap').description('the read-only LDAP face (docs/ldap.md)');
ldapCmd
  .command('export')
  .description('write every entry as LDIF (RFC 2849) for OpenLDAP slapadd/ldapadd')
  .option('-o, --out <file>', 'write to a file instead of stdout')
  .action(async (o: { out?: string }) => {
    const c = config();
    await withDirectory(async (d) => {
      const text = await exportLdif(d, c.ldap.base);
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
    });
  });
ldapCmd
  .command('schema')
  .description('write the extra OpenLDAP schema the export needs (pgpKey, mailmeshDomainKey)')
  .addOption(new Option('--format <format>', 'slapd.conf include file, or a cn=config LDIF entry').choices(['schema', 'ldif']).default('schema'))
  .option('-o, --out <file>', 'write to a file instead of stdout')
  .action((o: { format: string; out?: string }) => {
    const text = o.format === 'ldif' ? renderSchemaLdif() : renderSchemaFile();
    if (o.out) writeFileSync(o.out, text);
    else process.stdout.write(text);
  });

program
  .command('config')
  .description('configuration')
  .command('print')
  .description('print the effective configuration (file + environment + defaults), secrets masked')
  .action(() => {
    process.stdout.write(stringify(maskedConfig(config())));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = asMailmeshError(err);
  process.stderr.write(`mailmesh: ${e.code}: ${e.message}\n`);
  process.exit(1);
});
