// `shim6 lab demo` through the real CLI: --json figures and --plot SVG, in
// shim6 mode (daemons, DNS priming, black hole of P) and in plain-TCP mode
// (which does not recover); the lab is gone afterwards; flags are validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { shim6, shim6Async } from '../helpers/cli.ts';
import { crossesLinkP, labFor, listNamespaces } from '../../lab/topology.ts';
import { labDown } from '../../lab/lab.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Summary {
  mode: string; stall_ms: number; recovered: boolean; bytes_sent: number; bytes_verified: number; corrupt: number; rehome_ms: number | null; samples_mbit: number[];
  pair_at_failure?: { local: string; peer: string } | null;
}

for (const mode of ['shim6', 'tcp'] as const) {
  test(`lab demo --mode ${mode} --json --plot`, { timeout: 240_000 }, async (t) => {
    if (!needs(t, PREREQ)) return;
    const prefix = `e2e${process.pid.toString(36).slice(-4)}${mode === 'tcp' ? 't' : 's'}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-demo-'));
    t.after(() => { labDown(labFor(prefix)); rmSync(dir, { recursive: true, force: true }); });
    const svg = path.join(dir, 'demo.svg');
    const r = shim6(['lab', 'demo', '--prefix', prefix, '--mode', mode, '--json', '--plot', svg, '--duration', '3000', '--fail-at', '1000', '--rate', '8'], { timeout: 200_000 });
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Summary;
    assert.equal(s.mode, mode);
    assert.equal(s.corrupt, 0);
    assert.ok(s.bytes_verified > 0 && s.bytes_verified <= s.bytes_sent);
    assert.ok(s.samples_mbit.length >= 20, `${s.samples_mbit.length} samples`);
    t.diagnostic(`stall ${s.stall_ms} ms, re-homed after ${s.rehome_ms} ms`);
    if (mode === 'shim6') {
      // How fast is the failover bench's (docs/benchmarks.md "Failover"); here: that it happened.
      assert.equal(s.recovered, true);
      // Re-homed after the failure, or (a busy host's false exploration) already off link P before it.
      const pair = s.pair_at_failure;
      assert.ok(pair, 'A had a context with B when P failed');
      if (s.rehome_ms === null) {
        assert.ok(!crossesLinkP(pair), `no re-homing, yet the context was on link P (${pair.local} → ${pair.peer})`);
        t.diagnostic(`the context was already off P: ${pair.local} → ${pair.peer}`);
      } else assert.ok(s.rehome_ms >= 0, `rehome ${s.rehome_ms}`);
    } else {
      assert.equal(s.recovered, false, 'plain TCP to an address only on P cannot recover');
      assert.equal(s.rehome_ms, null);
    }
    const text = readFileSync(svg, 'utf8');
    assert.match(text, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(text, /<polyline /);
    assert.match(text, /link P blackhole/);
    for (const n of ['a', 'b', 'dns']) assert.ok(!listNamespaces().includes(prefix + n), 'the demo removed its lab');
    assert.equal(existsSync(labFor(prefix).stateDir), false);
  });
}

test('lab flags are validated (exit 2, naming the flag); down is idempotent', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const bad = [[['--mode', 'quic'], '--mode'], [['--failure', 'flap'], '--failure'], [['--duration', '2000', '--fail-at', '5000'], '--fail-at'], [['--rate', '-1'], '--rate'],
    [['--fail-at', '2000', '--restart-at', '2000'], '--restart-at'], [['--mode', 'tcp', '--restart-at', '500'], '--restart-at'], [['--restart-at', 'soon'], '--restart-at'],
    // A flag of shim6 mode in another mode would be ignored (its own prefix: a demo that ran would not touch another lab).
    [['--mode', 'tcp', '--send-timeout', '500', '--prefix', `e2e${process.pid.toString(36).slice(-4)}s`], '--send-timeout']] as const;
  // Each a process of its own, all at once.
  const [up, down, ...demos] = await Promise.all([
    shim6Async(['lab', 'up', '--prefix', 'NoLab']),
    shim6Async(['lab', 'down', '--prefix', `e2e${process.pid.toString(36).slice(-4)}x`]),
    ...bad.map(([args]) => shim6Async(['lab', 'demo', ...args])),
  ]);
  bad.forEach(([args, flag], i) => {
    assert.equal(demos[i]!.status, 2, `${args.join(' ')}: ${demos[i]!.stderr}`);
    assert.match(demos[i]!.stderr, new RegExp(flag));
  });
  assert.equal(up!.status, 2);
  assert.equal(down!.status, 0);
  assert.match(down!.stdout, /nothing to remove/);
});

test('lab demo --renumber --json: A gets a new prefix outside its HBA set mid-stream, then loses its first address; no byte lost; DNS and B follow', { timeout: 240_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const prefix = `e2e${process.pid.toString(36).slice(-4)}r`;
  t.after(() => { labDown(labFor(prefix)); });
  const r = shim6(['lab', 'demo', '--prefix', prefix, '--renumber', '--json', '--duration', '6000', '--fail-at', '1500', '--rate', '8'], { timeout: 200_000 });
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Summary & { failure: string; record_updated_ms: number | null; peer_locators: { address: string; verified: boolean; broken: boolean }[] };
  t.diagnostic(`stall ${s.stall_ms} ms, re-homed ${s.rehome_ms} ms after the removal, record in DNS after ${s.record_updated_ms} ms`);
  assert.equal(s.failure, 'renumber');
  assert.equal(s.recovered, true);
  assert.equal(s.corrupt, 0);
  assert.equal(s.bytes_verified, s.bytes_sent, 'the stream survives without a byte lost');
  assert.equal(typeof s.record_updated_ms, 'number', 'the lab\'s DNS served A\'s record with the new address');
  const view = Object.fromEntries(s.peer_locators.map((l) => [l.address, l]));
  assert.deepEqual(view['2001:db8:3::a'], { address: '2001:db8:3::a', verified: true, broken: false }, 'B verified the new locator (CGA)');
  const { LAB_ADDR } = await import('../../lab/topology.ts');
  assert.equal(view[LAB_ADDR.aP]?.broken, true, 'B no longer sends to the address A lost');
  for (const n of ['a', 'b', 'dns']) assert.ok(!listNamespaces().includes(prefix + n), 'the demo removed its lab');
});
