/**
 * The lab's lifecycle: `labUp` builds the topology (topology.ts), starts
 * Knot with B's zone (dns.ts), and, when asked and available, the shim6
 * daemons on A and B (daemons.ts); `labDown` removes all of it. Also the
 * MPTCP set-up used as a baseline. Owns nothing beyond what those modules own.
 */
import { LAB_ADDR, LAB_IF, labExists, nsExec, topologyDown, topologyUp, type Lab, type TopologyOptions } from './topology.ts';
import { startLabDns, type LabZoneOptions } from './dns.ts';

export interface LabUpOptions extends LabZoneOptions, TopologyOptions {
  /** Progress lines for people (the CLI prints them). */
  say?: (line: string) => void;
}

export interface LabUpResult {
  recordSource: string;
}

/** Build the lab (replacing a stale one of the same prefix). Bounded: ≤ ~15 s. */
export async function labUp(lab: Lab, opts: LabUpOptions = {}): Promise<LabUpResult> {
  const say = opts.say ?? (() => undefined);
  topologyUp(lab, { attacker: opts.attacker ?? false });
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
