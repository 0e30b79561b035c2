// `npm run bench -- clock [rounds]`: the cost of one reading of the product's clock (shim/clock.ts
// bootClock: CLOCK_BOOTTIME through the addon), which the resolver's hit path reads once per query,
// against the monotonic clock it replaced (`performance.now()`) and the engine driver's former
// default (`performance.timeOrigin + performance.now()`). The cases take turns within each round
// (a busy host slows them alike); prints each one's median ns per call over the rounds with its
// interval, and the ratio of the medians. Asserts nothing.
import { performance } from 'node:perf_hooks';
import { bootClock, clockSource } from '../shim/clock.ts';
import { rate } from './_rate.ts';
import { median, medianInterval } from './_stats.ts';

const ROUNDS = Number(process.argv[2] ?? 11);
const cases: Array<[string, () => unknown]> = [
  ['performance.now()', () => performance.now()],
  ['bootClock()', bootClock],
  ['timeOrigin + performance.now()', () => performance.timeOrigin + performance.now()],
];
const ns: number[][] = cases.map(() => []);
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < cases.length; k++) {
    const i = (r + k) % cases.length;
    ns[i]!.push(1e9 / rate(cases[i]![1], 0.3, { warm: 100_000 }));
  }
}
console.log(`clock source: ${JSON.stringify(clockSource())}; ${ROUNDS} rounds`);
cases.forEach(([name], i) => {
  const iv = medianInterval(ns[i]!)!;
  console.log(`${name.padEnd(32)} ${median(ns[i])!.toFixed(1).padStart(7)} ns/call (${iv.lo.toFixed(1)}–${iv.hi.toFixed(1)})`);
});
console.log(`bootClock / performance.now: ${(median(ns[1])! / median(ns[0])!).toFixed(2)}×`);
