import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { run } from '../helpers.js';

// Network namespaces for the VRRP test (docs/ha.md): a "lan" namespace holding a bridge, one
// namespace per node with an eth0 on it, and a veth from the root namespace (where the test,
// its SMTP client and its sink run) onto the bridge. Only RFC 5737 documentation addresses.

/** The three RFC 5737 /24s; the test takes the first the root namespace does not use already. */
const RANGES = ['192.0.2', '198.51.100', '203.0.113'];
const NAME = /^mmha-(\d+)-/;

export interface Lan {
  /** The namespaces of the nodes, in order. */
  nodes: string[];
  lan: string;
  /** The root namespace's address on the bridge (client and sink). */
  host: string;
  /** The lan namespace's address on the bridge (the store). */
  store: string;
  /** Node i's own address. */
  nodeAddr(i: number): string;
  /** The shared (virtual) address. */
  vip: string;
  /** The /24 in use, `a.b.c`. */
  net: string;
}

/** `ip …`, throwing with its stderr. */
export const ip = (...args: string[]) => run('ip', args);

/** Runs a command in a namespace and returns its output. */
export const inNs = (ns: string, cmd: string, args: string[], opts: { allowFail?: boolean } = {}) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts);

/**
 * Network namespaces need root (CAP_NET_ADMIN). Not root on a developer machine: the reason to
 * skip. Not root in CI (CI is set): false, so the test runs and fails loudly, as it does when
 * `ip netns` fails for root.
 */
export function netnsSkip(): string | false {
  if (process.getuid?.() === 0 || process.env.CI) return false;
  return 'not root: the VRRP test creates network namespaces (CAP_NET_ADMIN); run it as root (CI does, and fails instead of skipping)';
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Removes what an earlier run killed before its teardown left: namespaces named after a process that is gone. */
async function removeStale(): Promise<void> {
  const names = (await ip('netns', 'list')).stdout.toString().split('\n').map((l) => l.split(' ')[0]!);
  for (const ns of names) {
    const pid = NAME.exec(ns)?.[1];
    if (!pid || alive(Number(pid))) continue;
    await removeNs(ns);
    await ip('link', 'del', `mmha${pid}`).catch(() => undefined);
  }
}

/** Kills every process left in a namespace, then deletes it. */
async function removeNs(ns: string): Promise<void> {
  const pids = (await run('ip', ['netns', 'pids', ns], { allowFail: true })).stdout.toString().split(/\s+/).filter(Boolean);
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await run('ip', ['netns', 'del', ns], { allowFail: true });
}

/** Creates the lan and `count` node namespaces; everything is removed when the test ends (teardown runs on failure too). */
export async function makeLan(t: Test, count: number): Promise<Lan> {
  await removeStale();
  const used = (await ip('-4', '-o', 'addr')).stdout.toString() + (await ip('-4', 'route')).stdout.toString();
  const net = RANGES.find((r) => !used.includes(`${r}.`));
  if (!net) throw new Error(`every RFC 5737 range is in use in the root namespace:\n${used}`);
  const tag = `mmha-${process.pid}-`;
  const lan = `${tag}lan`;
  const nodes = Array.from({ length: count }, (_, i) => `${tag}n${i + 1}`);
  const hostIf = `mmha${process.pid}`;
  t.teardown(async () => {
    for (const ns of [...nodes, lan]) await removeNs(ns);
    await run('ip', ['link', 'del', hostIf], { allowFail: true });
  });
  await ip('netns', 'add', lan);
  await ip('-n', lan, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', lan, 'addr', 'add', `${net}.2/24`, 'dev', 'br0');
  await ip('-n', lan, 'link', 'set', 'br0', 'up');
  await ip('-n', lan, 'link', 'set', 'lo', 'up');
  for (const [i, ns] of nodes.entries()) {
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i + 1}`, 'netns', lan);
    await ip('-n', lan, 'link', 'set', `p${i + 1}`, 'master', 'br0', 'up');
    await ip('-n', ns, 'addr', 'add', `${net}.${11 + i}/24`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    // A service may bind the shared address before it is here (UDP must, see docs/ha.md).
    await inNs(ns, 'sysctl', ['-qw', 'net.ipv4.ip_nonlocal_bind=1']);
  }
  await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'ph', 'netns', lan);
  await ip('-n', lan, 'link', 'set', 'ph', 'master', 'br0', 'up');
  await ip('addr', 'add', `${net}.1/24`, 'dev', hostIf);
  await ip('link', 'set', hostIf, 'up');
  return { nodes, lan, host: `${net}.1`, store: `${net}.2`, nodeAddr: (i) => `${net}.${11 + i}`, vip: `${net}.100`, net };
}

/** A daemon in a namespace, in a process group of its own. */
export interface Daemon {
  child: ChildProcess;
  log(): string;
  /** SIGKILL to its whole process group (keepalived's VRRP child too); resolves once it is gone. */
  kill(): Promise<void>;
}

/** Starts `cmd args` in `ns`; resolves once its output matches `ready`. Killed when the test ends. */
export async function daemon(t: Test, ns: string, cmd: string, args: string[], ready: RegExp): Promise<Daemon> {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    await exited;
  };
  t.teardown(kill);
  await new Promise<void>((resolve, reject) => {
    const data = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) resolve();
    };
    child.stdout!.on('data', data);
    child.stderr!.on('data', data);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${cmd} in ${ns} exited (${code}) before it was ready:\n${out}`)));
  });
  return { child, log: () => out, kill };
}

/** The indexes of the nodes whose eth0 holds the shared address (a SIGKILLed keepalived leaves it on its node). */
export async function holders(lan: Lan): Promise<number[]> {
  const held: number[] = [];
  for (const [i, ns] of lan.nodes.entries()) {
    const out = (await run('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { allowFail: true })).stdout.toString();
    if (out.includes(`inet ${lan.vip}/`)) held.push(i);
  }
  return held;
}
