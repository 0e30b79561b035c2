/**
 * The lab's lifecycle: `labUp` builds the topology (topology.ts), starts
 * Knot with B's zone (dns.ts), and, when asked and available, the shim6
 * daemons on A and B (daemons.ts); `labDown` removes all of it. Also the
 * MPTCP set-up used as a baseline. Owns nothing beyond what those modules own.
 */
import { LAB_ADDR, LAB_IF, LabError, labExists, nsExec, runningNamespaces, topologyDown, topologyUp, writeNetnsResolvConf, type Lab, type TopologyOptions } from './topology.ts';
import { LAB_ZONE, startLabDns, type LabZoneOptions } from './dns.ts';
import { LAB_STUB } from './daemons.ts';
import { EnvironmentError } from '../shim/errors.ts';
import { nodeArgs, packageRoot } from '../shim/runtime-paths.ts';
import { spawn } from 'node:child_process';

export interface LabUpOptions extends LabZoneOptions, TopologyOptions {
  /** Progress lines for people (the CLI prints them). */
  say?: (line: string) => void;
  /** Replace a lab of the same prefix that exists (default: refuse with ELAB_RUNNING, leaving it untouched). */
  replace?: boolean;
}

/**
 * Refuse (`ELAB_RUNNING`, exit 1) when namespaces of this prefix exist — a
 * running lab, someone else's, or one left by a crash — unless `replace`.
 */
export function assertLabFree(lab: Lab, replace = false): void {
  const running = runningNamespaces(lab);
  if (running.length === 0 || replace) return;
  const down = `shim6 lab down${lab.prefix === 'lab' ? '' : ` --prefix ${lab.prefix}`}`;
  throw new EnvironmentError('ELAB_RUNNING', `a lab with prefix "${lab.prefix}" is running (namespaces ${running.join(', ')}): left as it is; choose another --prefix, remove it with \`${down}\`, or replace it with --replace`);
}

export interface LabUpResult {
  recordSource: string;
}

/** Build the lab (a lab of the same prefix: refused, or replaced with `replace`). Bounded: ≤ ~15 s. */
export async function labUp(lab: Lab, opts: LabUpOptions = {}): Promise<LabUpResult> {
  const say = opts.say ?? (() => undefined);
  assertLabFree(lab, opts.replace ?? false);
  topologyUp(lab, { attacker: opts.attacker ?? false });
  writeNetnsResolvConf(lab, LAB_STUB, LAB_ZONE.replace(/\.$/, ''));
  say(`namespaces ${lab.a} ${lab.b} ${lab.dns}; links P (${LAB_ADDR.aP} ↔ ${LAB_ADDR.bP}) and Q (${LAB_ADDR.aQ} ↔ ${LAB_ADDR.bQ})`);
  if (opts.attacker) say(`link P is a hub in ${lab.sw}; the attacker ${lab.x} is on it at ${LAB_ADDR.xP}`);
  try {
    const { recordSource } = await startLabDns(lab, opts);
    say(`knotd in ${lab.dns} serves lab.example. on ${LAB_ADDR.dnsA} (B's capability record from ${recordSource})`);
    return { recordSource };
  } catch (err) {
    topologyDown(lab);
    throw err;
  }
}

/**
 * The tiny web server (http.ts) on host B, port 80, detached: it lives until
 * `labDown` kills the namespaces' processes. Resolves once it listens.
 */
export async function startLabHttp(lab: Lab): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', lab.b, process.execPath, ...nodeArgs('lab/http.ts'), '--port', '80'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: packageRoot });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new LabError(`the web server in ${lab.b} did not start: ${out.trim()}`)), 60_000);
      const check = (): void => { if (out.includes('listening on')) { clearTimeout(t); resolve(); } };
      child.stdout?.on('data', check);
      child.once('exit', (code) => { clearTimeout(t); reject(new LabError(`the web server in ${lab.b} exited (${code}): ${out.trim()}`)); });
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.stdout?.destroy();
  child.stderr?.destroy();
  child.unref();
}

/** Remove the lab; true if there was one. Idempotent. */
export function labDown(lab: Lab): boolean {
  const had = labExists(lab);
  topologyDown(lab);
  return had;
}

/**
 * Linux MPTCP in the lab: two subflows per connection. A may open 2 subflows
 * and accept B's announced address; B announces its Q address (signal), so A
 * opens the second subflow A(Q) → B(Q) over link Q.
 */
export function mptcpUp(lab: Lab): void {
  for (const ns of [lab.a, lab.b]) {
    nsExec(ns, ['sysctl', '-q', '-w', 'net.mptcp.enabled=1']);
    nsExec(ns, ['ip', 'mptcp', 'endpoint', 'flush']);
    nsExec(ns, ['ip', 'mptcp', 'limits', 'set', 'subflow', '2', 'add_addr_accepted', '2']);
  }
  nsExec(lab.b, ['ip', 'mptcp', 'endpoint', 'add', LAB_ADDR.bQ, 'dev', LAB_IF.Q, 'signal']);
  nsExec(lab.a, ['ip', 'mptcp', 'endpoint', 'add', LAB_ADDR.aQ, 'dev', LAB_IF.Q, 'subflow']);
}

/** Undo `mptcpUp` (the namespaces' MPTCP endpoints and limits). */
export function mptcpDown(lab: Lab): void {
  for (const ns of [lab.a, lab.b]) {
    nsExec(ns, ['ip', 'mptcp', 'endpoint', 'flush'], { check: false });
    nsExec(ns, ['ip', 'mptcp', 'limits', 'set', 'subflow', '0', 'add_addr_accepted', '0'], { check: false });
  }
}
