#!/usr/bin/env node
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { MailmeshError } from '../directory/errors.js';
import { pemToDer } from '../directory/smime.js';
import type { Directory } from '../directory/directory.js';
import type { DomainRecord } from '../directory/record.js';
import { exportZone } from '../directory/dns/dns.js';
import { exportLdif, renderSchemaFile, renderSchemaLdif } from '../directory/ldap/ldap.js';
import { doctor } from '../federation/doctor.js';
import { importThirdParty, loadAnchors } from '../federation/importer.js';
import { importFromLdap } from '../federation/ldapimport.js';
import { isoSecond, keyExpiries } from '../federation/lifecycle.js';
import { resetRegistration } from '../gateway/webmail/webmail.js';
import { discoveryFor, pinStoreFor, federationSources, openDirectory, zoneOptions } from './app.js';
import { loadConfig, maskedConfig, type Config } from './config.js';
import { exportCluster, joinCluster, joinReport, readPassphrase } from './cluster.js';
import { joinCommand, leaveCommand, lookupText, renderDoctor } from './commands.js';
import { demo } from './demo/demo.js';
import { recoverCommand, renewCommand, revokeCommand, rollAnnounce, rollFinish, rollStatus, vetoCommand, type KeyCommandContext } from './keycommands.js';
import { registerStoreCommands } from './backup.js';
import { registerLogCommands } from './logcommands.js';
import { EXIT, exitCodeFor, failureText, usageError } from './exit.js';
import { packageVersion } from '../directory/http/openapi.js';
import { serveSupervised } from './serve.js';
import { pinsAccept, pinsForget, pinsList, pinsShow } from './pinsadmin.js';

// exitOverride: commander's usage errors reach the one exit-code table (cli/exit.ts) instead of exiting 1.
const program = new Command('mailmesh')
  .description('E-Mail VPN: federated directory of domain keys and queue-less encrypting SMTP gateway')
  .version(packageVersion(), '-V, --version', 'print the version')
  .option('-c, --config <file>', 'configuration file (default ./mailmesh.yaml, or $MAILMESH_CONFIG)')
  .showHelpAfterError()
  .exitOverride();

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

/** Prints a command's text and sets its exit code. */
const done = (o: { text: string; exitCode: number }) => {
  console.log(o.text);
  process.exitCode = o.exitCode;
};

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
  .description('run the directory (HTTP, DNS, LDAP) and the SMTP gateway on the embedded store (demo domain on first start) until Ctrl-C')
  .action(() => serveSupervised(config));

program
  .command('demo')
  .description('two gateways and their directories on loopback; sends one message alpha.test → beta.test and shows what travelled')
  .addOption(new Option('--format <format>', 'tunnel format').choices(['pgp-mime', 'smime']).default('pgp-mime'))
  .action(async (o: { format: 'pgp-mime' | 'smime' }) => {
    process.exitCode = await demo({ format: o.format, out: (s) => process.stdout.write(s) });
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
      // Columns: domain, status, serial, OpenPGP fingerprint, S/MIME fingerprint, expiry of the OpenPGP key, the S/MIME leaf, the domain CA.
      const all = await d.listDomains();
      if (o.json) return void console.log(JSON.stringify(all, null, 2));
      for (const r of all) {
        const e = keyExpiries(r.keys);
        console.log([r.domain, r.status, r.serial, r.keys.openpgp?.fingerprint ?? '-', r.keys.smime?.fingerprint ?? '-', isoSecond(e.openpgp), isoSecond(e.smime), isoSecond(e['smime-ca'])].join('\t'));
      }
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
        // RFC 7468 §2: each PEM block on lines of its own (openssl reads no "-----END …----------BEGIN …-----").
        : o.what === 'smime' ? chain.map((c) => c.trim() + '\n').join('')
        : o.what === 'smime-der' ? chain[0] && pemToDer(chain[0])
        : JSON.stringify(r, null, 2) + '\n';
      if (!out) throw new MailmeshError('NOT_FOUND', `${r.domain} has no ${o.what} key`);
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

// Key lifecycle (docs/lifecycle.md): roll, renew, revoke, recover, veto.
/** Runs a key command with the directory and the federation settings of the configuration. */
const withKeys = (f: (k: KeyCommandContext) => Promise<{ text: string; exitCode: number }>) =>
  withDirectory(async (d) => {
    const c = config();
    done(await f({ directory: d, directories: c.federation.directories, sources: federationSources(c, d.clock) }));
  });
const days = (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a number of days');
  return Number(v);
};
domain
  .command('roll <domain>')
  .description('roll the domain keys: announce the next keys (default), show the roll (--status), or switch to them after the overlap (--finish)')
  .option('--overlap <days>', 'days between the announcement and the switch (default keys.overlapDays)', days)
  .option('--finish', 'switch to the announced keys (the _mailmesh TXT, if the domain publishes one, must name them)')
  .option('--now', 'with --finish: switch before the overlap ends')
  .option('--status', 'the phase, the dates, the keys, and which directories and peers have seen the new key')
  .action(async (name: string, o: { overlap?: number; finish?: boolean; now?: boolean; status?: boolean }) =>
    withKeys((k) => (o.status ? rollStatus(k, name) : o.finish ? rollFinish(k, name, o.now ?? false) : rollAnnounce(k, name, o.overlap))));
domain
  .command('renew <domain>')
  .description('re-issue the S/MIME certificate under the domain CA now (serve does it keys.renewBeforeDays before expiry)')
  .action(async (name: string) => withKeys((k) => renewCommand(k, name)));
domain
  .command('revoke <domain>')
  .description('revoke the domain keys (OpenPGP revocation certificate, CRL of the domain CA) and put new keys in their place at once')
  .addOption(new Option('--reason <reason>', 'why').choices(['compromised', 'superseded']).default('compromised'))
  .action(async (name: string, o: { reason: 'compromised' | 'superseded' }) => withKeys((k) => revokeCommand(k, name, o.reason)));
domain
  .command('recover <domain>')
  .description('the domain lost its private keys: new keys on this node, posted to every directory as a recovery (held down, open to a veto)')
  .addOption(new Option('--format <formats...>', 'tunnel formats, when the domain is created here').choices(['pgp-mime', 'smime']))
  .option('--smtp <host:port...>', 'gateway SMTP endpoints, when the domain is created here')
  .action(async (name: string, o: { format?: ('pgp-mime' | 'smime')[]; smtp?: string[] }) =>
    withKeys((k) => recoverCommand(k, name, { formats: o.format, gateways: o.smtp ? { smtp: o.smtp } : undefined })));
domain
  .command('veto <domain>')
  .description('refuse, signed by the current key, a key recovery a directory holds down for this domain')
  .action(async (name: string) => withKeys((k) => vetoCommand(k, name)));

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

// Federation (docs/federation.md): join, leave, lookup, third-party keys, doctor.
program
  .command('join <directory-url>')
  .description('join a directory: sign this gateway\'s domain record and post it (prints the TXT record to publish when the proof is missing)')
  .option('--domain <domain>', 'the domain (default: the only local one)')
  .action(async (url: string, o: { domain?: string }) => withDirectory(async (d) => done(await joinCommand(d, url, o.domain))));
program
  .command('leave <directory-url>')
  .description('leave a directory with a statement signed by the domain key')
  .option('--domain <domain>', 'the domain (default: the only local one)')
  .action(async (url: string, o: { domain?: string }) => withDirectory(async (d) => done(await leaveCommand(d, url, o.domain))));
program
  .command('lookup <domain-or-address>')
  .description('discover a peer\'s domain keys as the gateway does, with their provenance')
  .option('--json', 'JSON output')
  .action(async (q: string, o: { json?: boolean }) =>
    withDirectory(async (d) => {
      const found = await discoveryFor(config(), d).discover(q);
      if (o.json) console.log(JSON.stringify(found, null, 2));
      else done(lookupText(found));
    }));
program
  .command('keys')
  .description('third-party keys')
  .command('import [file]')
  .description('import a partner\'s OpenPGP key or S/MIME certificates (PEM, DER, PKCS#7), or pull them from its LDAP directory')
  .requiredOption('--domain <domain>', 'the partner domain')
  .option('--ldap <url>', 'ldap://host:port/<base DN> instead of a file')
  .option('--publish', 'publish the imported keys from this directory (default: federation.publishImported)')
  .action(async (file: string | undefined, o: { domain: string; ldap?: string; publish?: boolean }) => {
    const c = config();
    const opts = { trustAnchors: loadAnchors(c.federation.trustAnchors), publish: o.publish ?? c.federation.publishImported };
    await withDirectory(async (d) => {
      if (!file && !o.ldap) throw usageError('give a file or --ldap <url>');
      const r = o.ldap ? await importFromLdap(d, o.ldap, o.domain, opts) : await importThirdParty(d, o.domain, readFileSync(file!), { ...opts, origin: file! });
      console.log(`${summary(r)}
source   ${r.provenance.source}: ${r.provenance.verified}${r.publish === false ? ' (not published)' : ''}`);
    });
  });
program
  .command('doctor <domain>')
  .description('check what a peer sees of a domain (TXT pin, directory DNS, REST, WKD, LDAP, key expiry, pin violations)')
  .option('--ldap <url...>', 'also check these LDAP directories (ldap://host:port/base)')
  .action(async (name: string, o: { ldap?: string[] }) => {
    const c = config();
    await withDirectory(async (d) => {
      const rows = await doctor(name, {
        sources: federationSources(c, d.clock),
        directories: c.federation.directories,
        local: await d.findRecord(name, { unpublished: true }),
        pins: pinStoreFor(c, d),
        ldap: o.ldap,
      });
      done({ text: renderDoctor(rows), exitCode: rows.some((r) => r.result === 'fail') ? EXIT.FAILURE : EXIT.OK });
    });
  });

// Pins (docs/federation.md "Pins"): see and settle refused key changes, in the store or the pins file.
const pinsCmd = program.command('pins').description('the peer keys this gateway pinned, and the key changes it refused');
const pinsAdmin = (c: Config, d: Directory) => ({ pins: pinStoreFor(c, d), discovery: discoveryFor(c, d) });
pinsCmd
  .command('list')
  .description('one line a pinned domain: fingerprints, trust, announced next keys, refused changes')
  .option('--json', 'JSON output')
  .action(async (o: { json?: boolean }) => withDirectory(async (d) => done(await pinsList(pinStoreFor(config(), d), o.json))));
pinsCmd
  .command('show <domain>')
  .description('everything a pin holds: keys, next, previous and revoked keys, the refused changes')
  .option('--json', 'JSON output')
  .action(async (name: string, o: { json?: boolean }) => withDirectory(async (d) => done(await pinsShow(pinStoreFor(config(), d), name, o.json))));
pinsCmd
  .command('accept <domain>')
  .description('take the key the last refused change offered (looked up again; never a revoked key)')
  .action(async (name: string) => withDirectory(async (d) => done(await pinsAccept(pinsAdmin(config(), d), name))));
pinsCmd
  .command('forget <domain>')
  .description('delete the pin and the cached answer: the next lookup pins what it finds')
  .action(async (name: string) => withDirectory(async (d) => done(await pinsForget(pinsAdmin(config(), d), name))));

program
  .command('webmail')
  .description('Enhanced WebMail (docs/webmail.md)')
  .command('reset <address>')
  .description('forget a recipient\'s WebMail password: the next message asks to register again')
  .action(async (address: string) =>
    withDirectory(async (d) => {
      const existed = await resetRegistration(d.store, address);
      done({ text: existed ? `${address}: registration removed` : `${address}: not registered`, exitCode: existed ? EXIT.OK : EXIT.FAILURE });
    }));

const cluster = program.command('cluster').description('gateway clusters on one Redis store (docs/cluster.md)');
cluster
  .command('export')
  .description('write a passphrase-encrypted bundle of what a new node needs (store URL and prefix, master key, WebMail keys, face hosts/ports and http.publicUrl)')
  .requiredOption('--out <file>', 'the bundle file (written with mode 0600)')
  .option('--passphrase-file <file>', 'the passphrase (first line); default $MAILMESH_CLUSTER_PASSPHRASE')
  .action(async (o: { out: string; passphraseFile?: string }) => {
    const bundle = await exportCluster(config(), readPassphrase(o.passphraseFile, process.env));
    writeFileSync(o.out, bundle, { mode: 0o600, flag: 'wx' });
  });
cluster
  .command('join <bundle>')
  .description('decrypt a cluster bundle, check it against the store and write this node\'s configuration and master key file')
  .option('--config-out <file>', 'the configuration file to write', 'mailmesh.yaml')
  .option('--passphrase-file <file>', 'the passphrase (first line); default $MAILMESH_CLUSTER_PASSPHRASE')
  .option('--offline', 'do not contact the store (no check, no WebMail keys put back)')
  .action(async (file: string, o: { configOut: string; passphraseFile?: string; offline?: boolean }) => {
    const w = await joinCluster(readFileSync(file, 'utf8'), readPassphrase(o.passphraseFile, process.env), o.configOut, { offline: o.offline });
    if (w.restored) console.log(`the store answers and the master key opens it${w.restored.length ? `; WebMail key versions put back: ${w.restored.join(', ')}` : ''}`);
    console.log(joinReport(w));
  });

// Upgrades, backups and restores (docs/backup.md).
registerStoreCommands(program, config);

// The transparency log of a directory, checked from outside (docs/transparency.md).
registerLogCommands(program);

program
  .command('config')
  .description('configuration')
  .command('print')
  .description('print the effective configuration (file + environment + defaults), secrets masked')
  .action(() => {
    process.stdout.write(stringify(maskedConfig(config())));
  });

// Every failure exits by one table (cli/exit.ts exitCodeFor; docs/operations.md "Exit codes").
program.parseAsync(process.argv).catch((err: unknown) => {
  const text = failureText(err);
  if (text) process.stderr.write(`mailmesh: ${text}\n`);
  process.exit(exitCodeFor(err));
});
