import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { isMailmeshError, MailmeshError } from '../directory/errors.js';
import { TlogClient, verifyCheckpoint, type VerifiedCheckpoint } from '../federation/tlogclient.js';
import { EXIT, usageError } from './exit.js';

/**
 * `mailmesh log checkpoint|verify|proof`: a directory's transparency log checked from outside
 * (docs/transparency.md), by federation/tlogclient.ts. The log key (vkey) comes from --vkey, from
 * a saved checkpoint file, or on first use from the directory's `/v1/log`; a saved file pins it.
 * A proof that does not verify, a rollback or a bad signature is a violation: exit 2.
 */

/** A saved checkpoint file: the directory, the pinned vkey and the signed checkpoint note (its `checkpoint` also reads as a C2SP note). */
interface SavedCheckpoint {
  directory: string;
  vkey: string;
  checkpoint: string;
}

type Outcome = { text: string; exitCode: number };

/** Reads and verifies a saved checkpoint file (malformed: DATAERR through the exit table). */
function readSaved(file: string): { saved: SavedCheckpoint; verified: VerifiedCheckpoint } {
  let saved: SavedCheckpoint;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as SavedCheckpoint;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e;
    throw new MailmeshError('TLOG_INVALID', `${file}: not a saved checkpoint (JSON with directory, vkey, checkpoint)`);
  }
  if (typeof saved?.vkey !== 'string' || typeof saved.checkpoint !== 'string') throw new MailmeshError('TLOG_INVALID', `${file}: vkey and checkpoint expected`);
  return { saved, verified: verifyCheckpoint(saved.checkpoint, saved.vkey) };
}

function save(file: string, directory: string, c: VerifiedCheckpoint): void {
  const saved: SavedCheckpoint = { directory, vkey: c.vkey, checkpoint: c.note };
  writeFileSync(file, JSON.stringify(saved, null, 2) + '\n');
}

/** The vkey to use: --vkey, else the pinned one of a saved file, else the directory's own (trust on first use, said so). */
async function vkeyFor(client: TlogClient, o: { vkey?: string }, pinned: string | undefined, notes: string[]): Promise<string> {
  if (o.vkey && pinned && o.vkey !== pinned) throw usageError(`--vkey ${o.vkey} is not the key the saved checkpoint pinned (${pinned})`);
  const vkey = o.vkey ?? pinned;
  if (vkey) return vkey;
  const info = await client.info();
  notes.push(`first use: trusting the log key the directory names, ${info.vkey}`);
  return info.vkey;
}

/** Runs a check; a verification failure of what the directory served is a violation (exit 2), named by its message. */
async function check(f: (notes: string[]) => Promise<string>): Promise<Outcome> {
  const notes: string[] = [];
  try {
    const text = await f(notes);
    return { text: [...notes, text].join('\n'), exitCode: EXIT.OK };
  } catch (e) {
    if (isMailmeshError(e, 'TLOG_PROOF_FAILED') || isMailmeshError(e, 'TLOG_INVALID')) {
      return { text: [...notes, `VIOLATION ${e.code}: ${e.message}`].join('\n'), exitCode: EXIT.VIOLATION };
    }
    throw e;
  }
}

const describe = (c: VerifiedCheckpoint) =>
  `${c.note.trimEnd()}\n\nverified: origin ${c.checkpoint.origin}, size ${c.checkpoint.size}, root ${c.checkpoint.rootHash.toString('hex')}, key ${c.vkey}`;

/** `log checkpoint`: the current checkpoint, its signature and the tiles' root; with --save, consistency from the file's first, then saved. */
export async function logCheckpoint(o: { directory: string; vkey?: string; save?: string }): Promise<Outcome> {
  const client = new TlogClient(o.directory);
  const before = o.save && existsSync(o.save) ? readSaved(o.save) : undefined;
  return check(async (notes) => {
    const current = await client.checkpoint(await vkeyFor(client, o, before?.saved.vkey, notes));
    await client.checkTiles(current);
    if (before) {
      await client.consistency(before.verified, current);
      notes.push(`consistent with the saved checkpoint of size ${before.verified.checkpoint.size}`);
    }
    if (o.save) save(o.save, client.base, current);
    return describe(current) + (o.save ? `\nsaved to ${o.save}` : '');
  });
}

/** `log verify --since <file>`: the current checkpoint is a consistent extension of the saved one (same pinned key). */
export async function logVerify(o: { directory: string; since: string; vkey?: string; save?: boolean }): Promise<Outcome> {
  const client = new TlogClient(o.directory);
  const { saved, verified: older } = readSaved(o.since);
  return check(async (notes) => {
    const current = await client.checkpoint(await vkeyFor(client, o, saved.vkey, notes));
    await client.checkTiles(current);
    await client.consistency(older, current);
    if (o.save) save(o.since, client.base, current);
    return `consistent: the tree of ${older.checkpoint.size} is a prefix of the tree of ${current.checkpoint.size} (root ${current.checkpoint.rootHash.toString('hex')})` +
      (o.save ? `\nsaved to ${o.since}` : '');
  });
}

/** `log proof <domain>`: the domain record's inclusion proof against its checkpoint, and that checkpoint consistent with the current one. */
export async function logProof(domain: string, o: { directory: string; vkey?: string; since?: string }): Promise<Outcome> {
  const client = new TlogClient(o.directory);
  const pinned = o.since ? readSaved(o.since) : undefined;
  return check(async (notes) => {
    const vkey = await vkeyFor(client, o, pinned?.saved.vkey, notes);
    const current = await client.checkpoint(vkey);
    const found = await client.inclusion(domain, vkey, current);
    // The log may have grown between the two reads: the smaller tree must be a prefix of the larger.
    const [older, newer] = found.checkpoint.checkpoint.size <= current.checkpoint.size ? [found.checkpoint, current] : [current, found.checkpoint];
    await client.consistency(older, newer);
    if (pinned) await client.consistency(pinned.verified, current);
    return `${domain}: leaf ${found.leafIndex} is included in the tree of ${found.checkpoint.checkpoint.size} (root ${found.checkpoint.checkpoint.rootHash.toString('hex')}), consistent with the current tree of ${current.checkpoint.size}`;
  });
}

/** Registers `mailmesh log …` (cli/main.ts). */
export function registerLogCommands(program: Command): void {
  // A violation goes to standard error, with exit 2; a verified log to standard output.
  const done = (o: Outcome) => {
    (o.exitCode === EXIT.OK ? process.stdout : process.stderr).write(o.text + '\n');
    process.exitCode = o.exitCode;
  };
  const log = program.command('log').description('check a directory\'s transparency log from outside (docs/transparency.md); exit 2 on a violation');
  const vkeyOption = ['--vkey <vkey>', 'the log\'s signed-note key (default: the saved file\'s, else the directory\'s own /v1/log on first use)'] as const;
  log
    .command('checkpoint')
    .description('print and verify the current checkpoint (signature, root from the tiles); --save pins the key and keeps it')
    .requiredOption('--directory <url>', 'the directory\'s base URL')
    .option(...vkeyOption)
    .option('--save <file>', 'write the checkpoint and its key here (an existing file: consistency from it is checked first)')
    .action(async (o: { directory: string; vkey?: string; save?: string }) => done(await logCheckpoint(o)));
  log
    .command('verify')
    .description('check that the current checkpoint extends a saved one (RFC 9162 consistency proof)')
    .requiredOption('--directory <url>', 'the directory\'s base URL')
    .requiredOption('--since <file>', 'a checkpoint saved by `mailmesh log checkpoint --save`')
    .option(...vkeyOption)
    .option('--save', 'update the file to the current checkpoint when it verified')
    .action(async (o: { directory: string; since: string; vkey?: string; save?: boolean }) => done(await logVerify(o)));
  log
    .command('proof <domain>')
    .description('check the inclusion proof of a domain\'s record against the log\'s checkpoint')
    .requiredOption('--directory <url>', 'the directory\'s base URL')
    .option(...vkeyOption)
    .option('--since <file>', 'a saved checkpoint: its key is used and the current tree must extend it')
    .action(async (domain: string, o: { directory: string; vkey?: string; since?: string }) => done(await logProof(domain, o)));
}
