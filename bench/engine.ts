// `npm run bench -- engine [--json] [--quick] [--floods | --no-floods] [--rounds N] [--flood-rate N]`:
// the Engine's figures of issue 3, then the flood figures of issue 15.
//   handshake_rtts   round trips from prime() to ESTABLISHED (simulator, 20 ms links)
//   rehome_ms_fast   silent black hole of the current pair → payload flowing on another
//   rehome_ms_rfc    pair, both directions, 20 ms links; median of 5 seeds (max in JSON)
//   i1_per_s         R1s produced per CPU-second (one core), I1s from random addresses,
//                    replyLimit off (the in-process engines here run without limits)
//   flood_contexts   contexts the responder holds after 1,000,000 such I1s
//   i1_limited_per_s the same I1s handled per CPU-second with the default reply limits
//   i2_per_s         contexts created per CPU-second from valid I2s (HBA-verified locators)
//   bytes_per_context heap + external growth per established context, 100,000 contexts
// Peers in the same run, as ratios: one SHA-256 over a validator-sized input (the
// floor under a stateless R1) and one verifyHbaSet of a 2-locator set (the floor
// under an I2).
// Floods (root; bench/_engine-flood.ts): 100,000 I1s and 100,000 payload packets
// with unknown tags, from 1 source and from 1,000 sources (1,000 /64s), over
// real UDP against two real `shim6 resolver` processes in namespaces, one with
// the default reply limits and one with `replyLimit: off`, side by side in one
// run: replies per flood and the target's CPU time, as ratios limits on/off;
// median of --rounds (3). Sent at --flood-rate packets/s (10,000; 0 = as fast
// as the flood tool can, which overruns the target's socket buffer, so most
// packets never reach the engine). `--floods` runs only these, `--no-floods`
// skips them.
// Prints figures; asserts nothing. Re-executes itself under --expose-gc so the
// memory figure is taken after a full collection.
import { spawnSync } from 'node:child_process';
import { hash, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { DEFAULT_REPLY_LIMIT, Engine } = await import('../shim/engine/index.ts');
type ReplyLimitConfig = import('../shim/engine/index.ts').ReplyLimitConfig;
const { verifyHbaSet } = await import('../shim/wire/hba.ts');
const { ms } = await import('../shim/time.ts');
const { primeWith, shimPair, established } = await import('../test/sim/shim-hosts.ts');
const { buildI2s, i1Flood, makeInitiators } = await import('./_engine-load.ts');
const { floodFigures, floodsUnavailable, floodTable } = await import('./_engine-flood.ts');

const JSON_OUT = process.argv.includes('--json');
const QUICK = process.argv.includes('--quick');
const FLOODS_ONLY = process.argv.includes('--floods');
const NO_FLOODS = process.argv.includes('--no-floods');
function intArg(name: string, def: number, min: number): number {
  const at = process.argv.indexOf(name);
  const v = at > 0 ? Number(process.argv[at + 1]) : def;
  if (!Number.isInteger(v) || v < min) { console.error(`engine: ${name} needs an integer ≥ ${min}`); process.exit(2); }
  return v;
}
const ROUNDS = intArg('--rounds', QUICK ? 1 : 3, 1);
const FLOOD_RATE = intArg('--flood-rate', 10_000, 0);
const FLOOD_COUNT = QUICK ? 20_000 : 100_000;
const say = (s: string): void => { if (!JSON_OUT) console.log(s); };
const gc = globalThis.gc as () => void;
const now0 = ms(10_000_000);
const RESPONDER = '2001:db8:ffff::1';
const randomBytesPool = randomBytes(200);

function handshakeRtts(): number {
  const { sim, a, b } = shimPair(101);
  const t0 = sim.now;
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1, { within: 10_000 });
  return (sim.now - t0) / 40;
}

/** ms from black-holing the current pair to payload arriving on another pair in both directions. */
function rehome(profile: 'fast' | 'rfc', seed: number): number {
  const { sim, a, b } = shimPair(seed, { a: { profile }, b: { profile } });
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 10_000 });
  for (let t = 0; t < 1000; t += 20) { sim.send(a.host, b.ulid); sim.send(b.host, a.ulid); sim.runFor(20); }
  const pair = sim.ledger.deliveries.filter((d) => d.host === 'b').at(-1)!.via;
  const dead = (v: { src: string; dst: string }): boolean => (v.src === pair.src && v.dst === pair.dst) || (v.src === pair.dst && v.dst === pair.src);
  const t1 = sim.now;
  sim.setLink(pair.src, pair.dst, { blackhole: true });
  const first: Record<string, number> = {};
  while (sim.now - t1 < 120_000 && (first.a === undefined || first.b === undefined)) {
    sim.send(a.host, b.ulid); sim.send(b.host, a.ulid);
    sim.runFor(20);
    for (const d of sim.ledger.deliveries) if (d.at > t1 && d.path === 'shim' && !dead(d.via) && first[d.host] === undefined) first[d.host] = d.at - t1;
  }
  return Math.max(first.a ?? Infinity, first.b ?? Infinity);
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/**
 * CPU milliseconds this process has used. Rates are per CPU-second, not per
 * wall-second: the build machine's two cores are shared by many jobs (load
 * average printed above), and "one core" means the time the work really ran.
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Calls per CPU-second of `fn` over ~`seconds` of CPU. */
function rate(fn: () => unknown, seconds = 1): number {
  for (let i = 0; i < 1000; i++) fn();
  let n = 0;
  const t0 = cpuMs();
  while (cpuMs() - t0 < seconds * 1000) { for (let i = 0; i < 100; i++) fn(); n += 100; }
  return n / ((cpuMs() - t0) / 1000);
}

/**
 * `total` I1s from random addresses, 20 µs of engine time apart. R1s per
 * CPU-second (`i1PerS`) is the stateless responder's cost with `replyLimit`
 * off; with the default limits nearly every I1 is refused before any hashing,
 * and `handledPerS` is what that costs.
 */
function i1Figures(total: number, replyLimit: ReplyLimitConfig): { i1PerS: number; handledPerS: number; floodContexts: number; r1s: number } {
  const e = new Engine({ localLocators: [{ address: RESPONDER }], profile: 'rfc', replyLimit }, { fill: (b) => void randomBytes(b.length).copy(b) });
  const chunk = Math.min(total, 50_000);
  let r1s = 0, busy = 0;
  for (let done = 0; done < total; done += chunk) {
    const batch = i1Flood(Math.min(chunk, total - done), RESPONDER); // untimed: the attacker's work
    const now = ms(now0 + done / 50);
    const t0 = cpuMs();
    for (const d of batch) {
      e.handleDatagram(now, d);
      while (e.pollTransmit()) r1s++;
    }
    busy += cpuMs() - t0;
  }
  return { i1PerS: r1s / (busy / 1000), handledPerS: total / (busy / 1000), floodContexts: e.contextCount, r1s };
}

function i2Figures(n: number): { i2PerS: number; contexts: number; bytesPerContext: number } {
  // Limits off: every initiator needs its R1, and the I2s come from 100,000 addresses within one instant.
  const e = new Engine({ localLocators: [{ address: RESPONDER }], profile: 'rfc', replyLimit: 'off' }, { fill: (b) => void randomBytes(b.length).copy(b) });
  gc(); gc();
  const m0 = process.memoryUsage();
  let inits: ReturnType<typeof makeInitiators> | undefined = makeInitiators(n);
  let i2s: ReturnType<typeof buildI2s> | undefined = buildI2s(e, RESPONDER, inits, now0);
  const t0 = cpuMs();
  for (const d of i2s) {
    e.handleDatagram(now0, d);
    while (e.pollTransmit()) { /* R2 */ }
  }
  const secs = (cpuMs() - t0) / 1000;
  while (e.pollEvent()) { /* context-established */ }
  const contexts = e.contextCount;
  inits = undefined; i2s = undefined;
  gc(); gc();
  const m1 = process.memoryUsage();
  const grew = (m1.heapUsed + m1.external) - (m0.heapUsed + m0.external);
  if (e.contextCount !== contexts || inits || i2s) throw new Error('unreachable');
  return { i2PerS: contexts / secs, contexts, bytesPerContext: grew / contexts };
}

const load = loadavg()[0]!;
say(`engine bench (${QUICK ? 'quick' : 'full'}), node ${process.version}, load average ${load.toFixed(1)} on ${process.env.HOSTNAME ?? 'this machine'}`);

/** The in-process figures of issue 3 (printed as they come); the JSON keys. */
function inProcessFigures(): Record<string, unknown> {
  const rtts = handshakeRtts();
  say(`handshake_rtts        ${rtts}   (prime() → ESTABLISHED, 20 ms links; must be 2)`);

  const seeds = QUICK ? [1] : [1, 2, 3, 4, 5];
  const fast = seeds.map((s) => rehome('fast', 500 + s));
  const rfc = seeds.map((s) => rehome('rfc', 600 + s));
  say(`rehome_ms_fast        ${median(fast)}   (median of ${seeds.length}; max ${Math.max(...fast)}; target ≤ 1000)`);
  say(`rehome_ms_rfc         ${median(rfc)}   (median of ${seeds.length}; max ${Math.max(...rfc)}; target ≤ Send Timeout 15000 + 2000)`);

  const i1 = i1Figures(QUICK ? 100_000 : 1_000_000, 'off');
  const sha = rate(() => hash('sha256', randomBytesPool, 'buffer'));
  say(`i1_per_s              ${Math.round(i1.i1PerS)}   (${i1.r1s} R1s, replyLimit off; target ≥ 50,000; ${(i1.i1PerS / sha).toFixed(2)} × one SHA-256 of 200 octets at ${Math.round(sha)}/s)`);
  say(`flood_contexts        ${i1.floodContexts}   (after ${QUICK ? '100,000' : '1,000,000'} I1s from random addresses; must be 0)`);
  const limited = i1Figures(QUICK ? 100_000 : 1_000_000, DEFAULT_REPLY_LIMIT);
  say(`i1_limited_per_s      ${Math.round(limited.handledPerS)}   (I1s handled, default reply limits: ${limited.r1s} R1s over ${((QUICK ? 100_000 : 1_000_000) / 50_000).toFixed(0)} s of engine time; ${(limited.handledPerS / i1.i1PerS).toFixed(2)} × i1_per_s)`);

  const i2 = i2Figures(QUICK ? 10_000 : 100_000);
  const sample = makeInitiators(64);
  let k = 0;
  const hba = rate(() => { const it = sample[k++ & 63]!; return verifyHbaSet(it.locators, it.pds); });
  say(`i2_per_s              ${Math.round(i2.i2PerS)}   (${i2.contexts} contexts; target ≥ 10,000; ${(i2.i2PerS / hba).toFixed(2)} × verifyHbaSet(2 locators) at ${Math.round(hba)}/s)`);
  say(`bytes_per_context     ${Math.round(i2.bytesPerContext)}   (heap + external growth over ${i2.contexts} established contexts; target ≤ 4096)`);
  return {
    handshake_rtts: rtts,
    rehome_ms_fast: median(fast), rehome_ms_fast_max: Math.max(...fast),
    rehome_ms_rfc: median(rfc), rehome_ms_rfc_max: Math.max(...rfc),
    i1_per_s: Math.round(i1.i1PerS), flood_contexts: i1.floodContexts, i1_limited_per_s: Math.round(limited.handledPerS), i1_limited_r1s: limited.r1s,
    i2_per_s: Math.round(i2.i2PerS), bytes_per_context: Math.round(i2.bytesPerContext), contexts: i2.contexts,
    sha256_per_s: Math.round(sha), hba_verify_per_s: Math.round(hba),
  };
}

/** The flood figures of issue 15, or why there are none. */
async function floods(): Promise<Record<string, unknown>> {
  const why = floodsUnavailable();
  if (why !== undefined) { say(`\nfloods: not measured: ${why}`); return { floods: `not measured: ${why}` }; }
  say(`\nfloods: ${FLOOD_COUNT.toLocaleString('en-US')} packets each, ${FLOOD_RATE ? `${FLOOD_RATE.toLocaleString('en-US')}/s` : 'flat out'}, over UDP 5533 against two \`shim6 resolver\` processes (reply limits on = defaults, off = replyLimit: off), ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, medians`);
  const { runs, idleCpuMsPerS } = await floodFigures({ count: FLOOD_COUNT, rate: FLOOD_RATE, rounds: ROUNDS, progress: (line) => say(line) });
  say('');
  for (const line of floodTable(runs, FLOOD_COUNT)) say(line);
  say(`\n(an idle target used ${idleCpuMsPerS.toFixed(1)} ms of CPU per second; bound: 10 + 10·t for one source (its /64), 200 + 200·t for 1,000 (global); load average now ${loadavg()[0]!.toFixed(1)})`);
  return { flood_count: FLOOD_COUNT, flood_rate: FLOOD_RATE, flood_rounds: ROUNDS, flood_idle_cpu_ms_per_s: idleCpuMsPerS, floods: runs };
}

const figures = { ...(FLOODS_ONLY ? {} : inProcessFigures()), ...(NO_FLOODS ? {} : await floods()) };

if (JSON_OUT) console.log(JSON.stringify({ ...figures, load_average: load, quick: QUICK }, null, 2));
