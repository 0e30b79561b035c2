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
 */
import { writeFileSync } from 'node:fs';
import { LAB_ADDR, type Lab } from './topology.ts';
import { LAB_B_NAME } from './dns.ts';
import { labDown, labUp, mptcpUp } from './lab.ts';
import { runStream, type FailureKind, type RunResult } from './run.ts';
import { throughputSvg, type PlotMarker } from './plot.ts';
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
  /** Publish no capability record for B and stream to B's address (shim6: the context comes from discovery). */
  noRecord?: boolean;
  /** Restart A's daemon this long after the stream connects (shim6 mode; before `failAtMs`). */
  restartAtMs?: number;
  /** Where lines for people go (stdout for the CLI). */
  out: (line: string) => void;
  /** Starts the daemons for mode shim6 (daemons.ts), injected so this module does not load the daemon. */
  startShim6?: (lab: Lab, say: (l: string) => void) => Promise<LabShim6>;
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
  failure: FailureKind;
  fail_at_ms: number | null;
  samples_mbit: number[];
  /** Where A's context with B came from (`dns`, `config`, `discovery`), null without one. */
  context_source: 'dns' | 'config' | 'discovery' | null;
  /** Daemon restarts during the run. */
  restarts: number;
}

const mbit = (bytes: number): number => (bytes * 8) / 1e5; // per 100 ms → Mbit/s

function bar(v: number, max: number): string {
  return '█'.repeat(Math.min(60, Math.max(0, Math.round((v / Math.max(max, 1)) * 40))));
}

/** Run the demo end to end; returns the summary (also printed). */
export async function runDemo(lab: Lab, o: DemoOptions): Promise<DemoSummary> {
  const say = o.json ? () => undefined : o.out;
  let shim6: LabShim6 | undefined;
  await labUp(lab, { capability: !o.noRecord, say: (l) => say(`lab: ${l}`) });
  try {
    if (o.mode === 'mptcp') mptcpUp(lab);
    if (o.mode === 'shim6') {
      if (!o.startShim6) throw new Error('shim6 mode needs the daemon');
      shim6 = await o.startShim6(lab, (l) => say(`lab: ${l}`));
    }
    const to = o.noRecord ? LAB_ADDR.bP : LAB_B_NAME;
    const resolver = o.noRecord ? undefined : shim6?.resolverA ?? LAB_ADDR.dnsA;
    const restartAt = shim6 && o.restartAtMs !== undefined ? o.restartAtMs : undefined;
    say(`demo: ${o.mode}: A ${resolver ? `resolves ${to} via ${resolver}` : `connects to B's address ${to} (no capability record)`}, streams ${(o.rate * 8 / 1e6).toFixed(0)} Mbit/s of checksummed blocks for ${o.durationMs / 1000} s; link P is ${o.failure === 'blackhole' ? 'silently black-holed' : 'set down'} at +${o.failAtMs / 1000} s`);
    const expected = mbit(o.rate / 10);
    let t0 = 0;
    let failAt: number | undefined;
    let recoveredShown = false;
    let rehomeShown = false;
    const res: RunResult = await runStream(lab, {
      to, durationMs: o.durationMs, failAtMs: o.failAtMs, failure: o.failure, rate: o.rate,
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
        if (e.ev === 'connected' && who === 'send') { t0 = e.t; say(`  +0.000 s  connected to ${e.remote}`); }
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
    for (const l of shim6?.events() ?? []) say(`  daemon: ${l}`);
    const rehome = shim6?.rehomeAt(res.failAt) ?? null;
    const window = res.samples.filter((s) => s.t >= res.connectedAt && s.t <= res.connectedAt + o.durationMs + 200);
    const summary: DemoSummary = {
      mode: o.mode, stall_ms: res.stall_ms, recovered: res.recovered, bytes_sent: res.bytes_sent,
      bytes_verified: res.bytes_verified, corrupt: res.corrupt,
      rehome_ms: rehome !== null && res.failAt !== undefined ? rehome - res.failAt : null,
      failure: o.failure, fail_at_ms: res.failAt !== undefined ? res.failAt - res.connectedAt : null,
      samples_mbit: window.map((s) => +mbit(s.bytes).toFixed(2)),
      context_source: shim6?.contextSource(LAB_ADDR.bP) ?? null,
      restarts: shim6?.restarts() ?? 0,
    };
    say('summary:');
    say(`  stall (longest gap in received data): ${summary.stall_ms} ms${summary.recovered ? '' : ' — the stream did NOT recover'}`);
    if (summary.context_source !== null) say(`  A's context with B came from: ${summary.context_source}${summary.restarts ? `; daemon restarts: ${summary.restarts}` : ''}`);
    if (summary.rehome_ms !== null) say(`  re-homing after the failure: ${summary.rehome_ms} ms`);
    say(`  bytes sent ${summary.bytes_sent}, verified ${summary.bytes_verified}, corrupt blocks ${summary.corrupt}`);
    if (o.json) o.out(JSON.stringify(summary));
    if (o.plot) {
      const markers: PlotMarker[] = [];
      if (res.failAt !== undefined) markers.push({ t: (res.failAt - res.connectedAt) / 1000, label: `link P ${o.failure}`, color: '#d62728' });
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
