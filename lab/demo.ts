/**
 * `shim6 lab demo`: build the lab, resolve B by name from A, stream
 * checksummed data A→B, silently black-hole link P mid-stream, and show what
 * the application saw: a live timeline (throughput per 100 ms, the failure,
 * the re-homing, the stall), a summary, optionally JSON and an SVG plot.
 *
 * `--no-record`: B publishes no capability record and A streams to B's
 * address, so A's daemon finds B by host-based discovery. `--restart-at`:
 * A's daemon is restarted (SIGTERM, start) mid-stream, before the failure.
 *
 * Modes: `shim6` (daemons on A and B, the stream goes to B's ULID), `tcp`
 * (plain TCP, the baseline that does not survive) and `mptcp` (Linux MPTCP
 * with two subflows). Owns the presentation; the measuring is run.ts.
 *
 * `--renumber` (shim6 only) replaces the link failure by renumbering: at
 * `failAt` A gets an address on a third link R, on a prefix outside its HBA
 * set (proved to B by A's CGA Signature, published in the lab's DNS by A's
 * daemon), and a second later A loses the address it started with.
 */
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { crossesLinkP, LAB_ADDR, LAB_IF, type Lab } from './topology.ts';
import { LAB_A_NAME, LAB_B_NAME, labDnsUpdate } from './dns.ts';
import { LAB_ADDR_R, LAB_IF_R, LAB_INTERFACES_R, addAddress, linkRUp, removeAddress } from './renumber.ts';
import { labDaemonFiles } from './daemons.ts';
import { decodeCapabilityRecord } from '../shim/wire/capability-record.ts';
import { labDown, labUp, mptcpUp } from './lab.ts';
import { runStream, type FailureKind, type RunResult } from './run.ts';
import { throughputSvg, type PlotMarker } from './plot.ts';
import { LAB_BASE_TOOLS, requireTools } from './tools.ts';
import type { LabShim6 } from './daemons.ts';

export type DemoMode = 'shim6' | 'tcp' | 'mptcp';

export interface DemoOptions {
  mode: DemoMode;
  durationMs: number;
  failAtMs: number;
  failure: FailureKind;
  rate: number;
  json: boolean;
  plot?: string;
  keep: boolean;
  /** Replace a lab of the same prefix that exists (else refused: ELAB_RUNNING, the lab untouched). */
  replace?: boolean;
  /** Publish no capability record for B and stream to B's address (shim6: the context comes from discovery). */
  noRecord?: boolean;
  /** Restart A's daemon this long after the stream connects (shim6 mode; before `failAtMs`). */
  restartAtMs?: number;
  /** Where lines for people go (stdout for the CLI). */
  out: (line: string) => void;
  /** Starts the daemons for mode shim6 (daemons.ts), injected so this module does not load the daemon; `extraA`: config keys for A only. */
  startShim6?: (lab: Lab, say: (l: string) => void, extraA?: Record<string, unknown>) => Promise<LabShim6>;
  /** Renumber A mid-stream instead of failing link P (shim6 mode). */
  renumber?: boolean;
}

/** The figures `--json` prints. */
export interface DemoSummary {
  mode: DemoMode;
  stall_ms: number;
  recovered: boolean;
  bytes_sent: number;
  bytes_verified: number;
  corrupt: number;
  rehome_ms: number | null;
  failure: FailureKind | 'renumber';
  fail_at_ms: number | null;
  samples_mbit: number[];
  /** --renumber: from the new address appearing until the lab's DNS served A's record with it. */
  record_updated_ms?: number | null;
  /** --renumber: B's view of A's locators at the end. */
  peer_locators?: { address: string; verified: boolean; broken: boolean }[];
  /** Where A's context with B came from (`dns`, `config`, `discovery`), null without one. */
  context_source: 'dns' | 'config' | 'discovery' | null;
  /** Daemon restarts during the run. */
  restarts: number;
  /**
   * The locator pair A's context with B was on just before the failure (shim6 mode), null without
   * one. On a busy host an earlier exploration may already have moved it off link P: then nothing
   * re-homes after the failure and `rehome_ms` is null.
   */
  pair_at_failure?: { local: string; peer: string } | null;
}

/** The locators of A's capability record as the lab's DNS serves it now (asked from A, without blocking). */
function askDns(lab: Lab): Promise<string[]> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', lab.a, 'kdig', `@${LAB_ADDR.dnsA}`, LAB_A_NAME, 'TYPE65300', '+short', '+timeout=1', '+retry=0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('close', () => {
      const line = out.trim().split('\n')[0] ?? '';
      try {
        resolve(line ? decodeCapabilityRecord(new Uint8Array(Buffer.from(line.replace(/^\\# \d+ /, '').replace(/ /g, ''), 'hex'))).locators.map((l) => l.address) : []);
      } catch { resolve([]); }
    });
  });
}

/** B's view of A's locators (its daemon's status). */
/**
 * B's view of A's locators once it has followed: the removed address withdrawn (BROKEN) and the
 * new one verified, or as it is after 10 s (on a busy host A's Update can still be on its way
 * when the stream ends).
 */
async function peerLocators(lab: Lab): Promise<NonNullable<DemoSummary['peer_locators']>> {
  const { controlRequest } = await import('../shim/daemon/control/client.ts');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const st = await controlRequest(labDaemonFiles(lab, 'b').control, 'status') as { engine: { contexts: { peerUlid: string; state: string; peerLocators: { address: string; verified: boolean; flags: number }[] }[] } };
    const ctx = st.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.aP && c.state === 'ESTABLISHED');
    const view = (ctx?.peerLocators ?? []).map((l) => ({ address: l.address, verified: l.verified, broken: (l.flags & 1) !== 0 }));
    const followed = view.some((l) => l.address === LAB_ADDR.aP && l.broken) && view.some((l) => l.address === LAB_ADDR_R.a && l.verified);
    if (followed || Date.now() >= deadline) return view;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const mbit = (bytes: number): number => (bytes * 8) / 1e5; // per 100 ms → Mbit/s

function bar(v: number, max: number): string {
  return '█'.repeat(Math.min(60, Math.max(0, Math.round((v / Math.max(max, 1)) * 40))));
}

/** Run the demo end to end; returns the summary (also printed). */
export async function runDemo(lab: Lab, o: DemoOptions): Promise<DemoSummary> {
  const say = o.json ? () => undefined : o.out;
  let shim6: LabShim6 | undefined;
  // Every program the run will exec, named before anything is built.
  requireTools([...LAB_BASE_TOOLS, ...(o.mode === 'mptcp' ? ['mptcpize'] : [])], `lab demo --mode ${o.mode}`);
  await labUp(lab, { capability: !o.noRecord, say: (l) => say(`lab: ${l}`), replace: o.replace ?? false });
  const renumber = o.renumber === true && o.mode === 'shim6';
  try {
    if (o.mode === 'mptcp') mptcpUp(lab);
    if (renumber) {
      linkRUp(lab);
      say(`lab: link R between A and B on 2001:db8:3::/64 (outside A's HBA set); A's daemon watches it and publishes its record to the lab's DNS`);
    }
    if (o.mode === 'shim6') {
      if (!o.startShim6) throw new Error('shim6 mode needs the daemon');
      shim6 = await o.startShim6(lab, (l) => say(`lab: ${l}`), renumber ? { interfaces: LAB_INTERFACES_R, dnsUpdate: labDnsUpdate(lab) } : undefined);
    }
    const steps: { addedAt?: number; removedAt?: number; recordAt?: number | null } = {};
    const renumberSteps = async (t0: number): Promise<void> => {
      await new Promise((r) => setTimeout(r, o.failAtMs));
      addAddress(lab, 'a', LAB_IF_R, LAB_ADDR_R.a);
      steps.addedAt = Date.now();
      say(`  +${((steps.addedAt - t0) / 1000).toFixed(3)} s  ✚ A gets ${LAB_ADDR_R.a} on link R (a new prefix, outside its HBA set)`);
      const removeAt = steps.addedAt + 1000;
      // The address goes at once (`ip addr del`, no deprecation first): A's daemon sees it gone and withdraws it, the context moves off it.
      const removeStart = (): void => {
        removeAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
        steps.removedAt = Date.now();
        say(`  +${((steps.removedAt - t0) / 1000).toFixed(3)} s  ✖ A's ${LAB_ADDR.aP}, the address the stream started on, is removed`);
      };
      const deadline = steps.addedAt + 30_000;
      steps.recordAt = null;
      while (Date.now() < deadline && steps.recordAt === null) {
        if ((await askDns(lab)).includes(LAB_ADDR_R.a)) steps.recordAt = Date.now();
        else await new Promise((r) => setTimeout(r, 50));
        if (steps.removedAt === undefined && Date.now() >= removeAt) removeStart();
      }
      if (steps.recordAt !== null) say(`  +${((steps.recordAt - t0) / 1000).toFixed(3)} s  ⟳ the lab's DNS serves A's record with it (${steps.recordAt - steps.addedAt} ms)`);
      if (steps.removedAt === undefined) { await new Promise((r) => setTimeout(r, Math.max(0, removeAt - Date.now()))); removeStart(); }
    };
    let renumbering: Promise<void> | undefined;
    const to = o.noRecord ? LAB_ADDR.bP : LAB_B_NAME;
    const resolver = o.noRecord ? undefined : shim6?.resolverA ?? LAB_ADDR.dnsA;
    const restartAt = shim6 && o.restartAtMs !== undefined ? o.restartAtMs : undefined;
    const what = renumber ? `A is renumbered at +${o.failAtMs / 1000} s (new prefix on link R, then its first address removed)` : `link P is ${o.failure === 'blackhole' ? 'silently black-holed' : 'set down'} at +${o.failAtMs / 1000} s`;
    say(`demo: ${o.mode}: A ${resolver ? `resolves ${to} via ${resolver}` : `connects to B's address ${to} (no capability record)`}, streams ${(o.rate * 8 / 1e6).toFixed(0)} Mbit/s of checksummed blocks for ${o.durationMs / 1000} s; ${what}`);
    const expected = mbit(o.rate / 10);
    let t0 = 0;
    let failAt: number | undefined;
    let recoveredShown = false;
    let rehomeShown = false;
    const res: RunResult = await runStream(lab, {
      to, durationMs: o.durationMs, failAtMs: o.failAtMs, failure: renumber ? 'none' : o.failure, rate: o.rate,
      ...(resolver ? { resolver } : {}),
      ...(o.mode === 'mptcp' ? { wrap: ['mptcpize', 'run'] } : {}),
      ...(restartAt !== undefined && shim6 ? {
        actions: [{ atMs: restartAt, run: async () => {
          say(`  +${(restartAt / 1000).toFixed(3)} s  ↻ restarting A's shim6 daemon (SIGTERM, start)`);
          await shim6!.restart('a');
          say(`  +${((Date.now() - t0) / 1000).toFixed(3)} s  ↻ A's shim6 daemon is ready again`);
        } }],
      } : {}),
      onEvent: (who, e) => {
        if (e.ev === 'connected' && who === 'send') {
          t0 = e.t;
          say(`  +0.000 s  connected to ${e.remote}`);
          if (renumber) renumbering = renumberSteps(t0).finally(() => { failAt = steps.removedAt; });
        }
        if (e.ev === 'failure') { failAt = e.t; say(`  +${((e.t - t0) / 1000).toFixed(3)} s  ✖ link ${e.link} ${e.kind === 'blackhole' ? 'black-holed (silent drop)' : 'down'}`); }
        if (e.ev === 'tick' && who === 'recv' && t0 && e.t <= t0 + o.durationMs + 200) {
          const rel = ((e.t - t0) / 1000).toFixed(1).padStart(5);
          if (failAt !== undefined && !rehomeShown && shim6) {
            const at = shim6.rehomeAt(failAt);
            if (at !== null) {
              rehomeShown = true;
              say(`  +${((at - t0) / 1000).toFixed(3)} s  ⇄ shim6 re-homed to another locator pair (${at - failAt} ms after the failure)`);
            }
          }
          const v = mbit(e.bytes);
          if (failAt !== undefined && !recoveredShown && e.bytes > 0 && e.t > failAt + 100) {
            recoveredShown = true;
            say(`  +${((e.t - t0) / 1000).toFixed(3)} s  ✔ data flows again (${e.t - failAt} ms after the failure)`);
          }
          say(`  +${rel} s ${v.toFixed(1).padStart(7)} Mbit/s ${bar(v, expected * 1.5)}`);
        }
      },
    });
    await renumbering;
    const failedAt = renumber ? steps.removedAt : res.failAt;
    for (const l of shim6?.events() ?? []) say(`  daemon: ${l}`);
    const rehome = shim6?.rehomeAt(failedAt) ?? null;
    const window = res.samples.filter((s) => s.t >= res.connectedAt && s.t <= res.connectedAt + o.durationMs + 200);
    const summary: DemoSummary = {
      mode: o.mode, stall_ms: res.stall_ms, recovered: res.recovered, bytes_sent: res.bytes_sent,
      bytes_verified: res.bytes_verified, corrupt: res.corrupt,
      rehome_ms: rehome !== null && failedAt !== undefined ? rehome - failedAt : null,
      failure: renumber ? 'renumber' : o.failure, fail_at_ms: failedAt !== undefined ? failedAt - res.connectedAt : null,
      samples_mbit: window.map((s) => +mbit(s.bytes).toFixed(2)),
      ...(renumber ? {
        record_updated_ms: steps.recordAt != null && steps.addedAt !== undefined ? steps.recordAt - steps.addedAt : null,
        peer_locators: await peerLocators(lab),
      } : {}),
      context_source: shim6?.contextSource(LAB_ADDR.bP) ?? null,
      restarts: shim6?.restarts() ?? 0,
      ...(shim6 && failedAt !== undefined ? { pair_at_failure: shim6.pairAt(LAB_ADDR.bP, failedAt) } : {}),
    };
    say('summary:');
    say(`  stall (longest gap in received data): ${summary.stall_ms} ms${summary.recovered ? '' : ' — the stream did NOT recover'}`);
    if (summary.context_source !== null) say(`  A's context with B came from: ${summary.context_source}${summary.restarts ? `; daemon restarts: ${summary.restarts}` : ''}`);
    if (summary.rehome_ms !== null) say(`  re-homing after the ${renumber ? 'address was removed' : 'failure'}: ${summary.rehome_ms} ms`);
    else if (summary.pair_at_failure && !renumber && !crossesLinkP(summary.pair_at_failure)) {
      say(`  re-homing: none needed, the context was already on ${summary.pair_at_failure.local} → ${summary.pair_at_failure.peer} (off link P) when P failed`);
    }
    if (renumber) {
      say(`  A's record in DNS with the new address after: ${summary.record_updated_ms ?? 'never'} ms`);
      say(`  B's view of A's locators: ${(summary.peer_locators ?? []).map((l) => `${l.address}${l.verified ? '' : ' (unverified)'}${l.broken ? ' (withdrawn)' : ''}`).join(', ')}`);
    }
    say(`  bytes sent ${summary.bytes_sent}, verified ${summary.bytes_verified}, corrupt blocks ${summary.corrupt}`);
    if (o.json) o.out(JSON.stringify(summary));
    if (o.plot) {
      const markers: PlotMarker[] = [];
      if (renumber && steps.addedAt !== undefined) markers.push({ t: (steps.addedAt - res.connectedAt) / 1000, label: 'new prefix', color: '#1f77b4' });
      if (failedAt !== undefined) markers.push({ t: (failedAt - res.connectedAt) / 1000, label: renumber ? 'first address removed' : `link P ${o.failure}`, color: '#d62728' });
      if (rehome !== null) markers.push({ t: (rehome - res.connectedAt) / 1000, label: 're-homed', color: '#2ca02c' });
      const points = window.map((s): [number, number] => [(s.t - res.connectedAt) / 1000, mbit(s.bytes)]);
      writeFileSync(o.plot, throughputSvg(`shim6 lab demo (${o.mode}): throughput A→B, stall ${summary.stall_ms} ms`, [{ label: o.mode, points }], markers));
      say(`  plot written to ${o.plot}`);
    }
    return summary;
  } finally {
    await shim6?.stop();
    if (!o.keep) labDown(lab);
  }
}
