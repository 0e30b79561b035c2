/**
 * shim6 daemons in the lab: one `shim6 daemon` per host (A and B), each with
 * its config (fast timers, its stub resolver on loopback forwarding to the
 * lab's Knot), started inside its namespace; their JSON logs are read for the
 * timeline (context established, locator pair changed = re-homing).
 * Owns the daemon processes it starts and their config files.
 */
import type { Lab } from './lab-topology.ts';

/** Running daemons of a lab, as the demo and the benchmarks see them. */
export interface LabShim6 {
  /** The address of A's stub resolver (inside A). */
  resolverA: string;
  /** Notable daemon events so far, one line each, for people. */
  events(): string[];
  /** When (epoch ms) A's daemon re-homed after `failAt`, or null. */
  rehomeAt(failAt: number | undefined): number | null;
  /** SIGTERM both daemons and wait for them (bounded). */
  stop(): Promise<void>;
}

/** Whether the parts the daemon needs (engine, data plane driver) exist in this tree. */
export async function shim6Available(): Promise<boolean> {
  try {
    // By URL, so this module type-checks before the daemon exists.
    await import(new URL('./daemon.ts', import.meta.url).href);
    return true;
  } catch {
    return false;
  }
}

/** Start daemons on A and B (not yet available: throws ENOTREADY naming what is missing). */
export async function startLabShim6(_lab: Lab, _say: (l: string) => void): Promise<LabShim6> {
  throw Object.assign(new Error('the shim6 daemon is not built yet (shim/dataplane/daemon.ts)'), { code: 'ENOTREADY' });
}
