// The kernel encapsulation's links (shim/dataplane/bpf-encap.ts): its tc programs are attached to
// every Ethernet link, also to one that is deleted and made again under its name (a USB NIC
// plugged in again, a VLAN or veth made again) — that link took our qdisc and filters with it,
// and the close leaves alone a link made again since the attaching.
// Runs BpfEncap in a namespace of its own (`ip netns exec` also gives it a mount namespace, where
// it mounts its own bpffs).
// A kernel without clsact: no link takes the programs, and before the encapsulation was opened
// anyway (no error, no link), taken for available while every re-homed context had to use the TUN.
// Programs the verifier refuses: the error names the verifier's reason (before: libbpf's
// "failed to load: -13" only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLANG, needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

test('kernel encapsulation: a link deleted and made again under its name gets the tc programs again', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('bl');
  const script = `
    import { spawnSync } from 'node:child_process';
    import { mkdtempSync, rmSync } from 'node:fs';
    const { BpfEncap } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const sh = (a) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(a.join(' ') + ': ' + r.stderr); return r.stdout; };
    const filtered = (dev) => sh(['tc', 'filter', 'show', 'dev', dev, 'egress']).includes('shim6_egress');
    const veth = () => { sh(['ip', 'link', 'add', 'blx0', 'type', 'veth', 'peer', 'name', 'blx1']); for (const d of ['blx0', 'blx1']) sh(['ip', 'link', 'set', d, 'up']); };
    veth();
    const cacheDir = mkdtempSync('/tmp/shim6-bpf-links-');
    const e = BpfEncap.open({ port: 5533, tun: 'blxtun', cacheDir, maxContexts: 16 });
    const ctx = { localUlid: '2001:db8:1::a', peerUlid: '2001:db8:2::b', localTag: 12345, peerLocators: ['2001:db8:3::b'] };
    const out = {};
    try {
      e.accept(ctx);
      out.before = filtered('blx0');
      sh(['ip', 'link', 'del', 'blx0']);
      veth();
      e.accept(ctx); // every context's entries attach to the links not yet attached
      out.after = filtered('blx0');
      out.links = e.links().sort();
      // Made again once more, and someone else's clsact put on it before the close: not ours to delete.
      sh(['ip', 'link', 'del', 'blx0']);
      veth();
      sh(['tc', 'qdisc', 'add', 'dev', 'blx0', 'clsact']);
    } finally {
      e.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
    out.othersKept = sh(['tc', 'qdisc', 'show', 'dev', 'blx0']).includes('clsact');
    out.closed = filtered('blx1');
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { before: boolean; after: boolean; links: string[]; othersKept: boolean; closed: boolean };
  assert.deepEqual(res, { before: true, after: true, links: ['blx0', 'blx1'], othersKept: true, closed: false },
    'attached at first, attached again once made again; at close, a clsact of someone else\'s on a link made again since is kept, and nothing of ours is left');
});

test('kernel encapsulation: a locator pair that leaves by a link without the programs (not Ethernet) is not one the kernel carries', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('bc');
  // blx0 (Ethernet: a veth) and tq (a TUN: no link header, `link/none`, like ppp0, wg0 or a raw-IP modem).
  const script = `
    import { spawnSync } from 'node:child_process';
    import { mkdtempSync, rmSync } from 'node:fs';
    const { BpfEncap } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const { LinuxTun } = await import(${JSON.stringify(treeModule('shim/dataplane/tun-linux.ts'))});
    const sh = (a) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(a.join(' ') + ': ' + r.stderr); return r.stdout; };
    sh(['ip', 'link', 'add', 'blx0', 'type', 'veth', 'peer', 'name', 'blx1']);
    for (const d of ['blx0', 'blx1']) sh(['ip', 'link', 'set', d, 'up']);
    sh(['ip', '-6', 'addr', 'add', 'fd00:1::a/64', 'dev', 'blx0', 'nodad']);
    const tun = LinuxTun.open({ name: 'tq', mtu: 1400 }); // held open: its link has a carrier
    sh(['ip', 'link', 'set', 'tq', 'up']);
    sh(['ip', '-6', 'addr', 'add', 'fd00:2::a/64', 'dev', 'tq', 'nodad']);
    const cacheDir = mkdtempSync('/tmp/shim6-bpf-carries-');
    const e = BpfEncap.open({ port: 5533, tun: 'bctun', cacheDir, maxContexts: 16 });
    const out = {};
    try {
      out.ethernet = e.carries('fd00:1::a', 'fd00:1::b');
      out.tun = e.carries('fd00:2::a', 'fd00:2::b');
      out.links = e.links();
    } finally {
      e.close();
      await tun.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ethernet: boolean; tun: boolean; links: string[] };
  assert.deepEqual({ ...res, links: res.links.sort() }, { ethernet: true, tun: false, links: ['blx0', 'blx1'] }, 'the veth carries (the programs are on it), the TUN does not (they are not, nor could they be)');
});

test('kernel encapsulation: a kernel without clsact (no link takes the programs) is no encapsulation: a clear EBPF error (which the daemon answers with the TUN path), nothing left', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('bn');
  // The kernel's answer without sch_ingress (CONFIG_NET_SCH_INGRESS): this tc refuses the clsact qdisc
  // kind as such a kernel does, and passes everything else to the real tc.
  const bin = mkdtempSync(path.join(tmpdir(), 'shim6-noclsact-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  const realTc = spawnSync('sh', ['-c', 'command -v tc'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(path.join(bin, 'tc'), `#!/bin/sh
refuse() { echo 'Error: Specified qdisc kind is unknown.' >&2; exit 2; }
for a in "$@"; do [ "$a" = clsact ] && refuse; done
case " $* " in *" -batch "*) in=$(cat); case "$in" in *clsact*) refuse;; esac; printf '%s\\n' "$in" | exec ${realTc} "$@";; esac
exec ${realTc} "$@"
`, { mode: 0o755 });
  const script = `
    import { spawnSync } from 'node:child_process';
    import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
    const { BpfEncap } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const sh = (a) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(a.join(' ') + ': ' + r.stderr); return r.stdout; };
    sh(['ip', 'link', 'add', 'bnx0', 'type', 'veth', 'peer', 'name', 'bnx1']);
    for (const d of ['bnx0', 'bnx1']) sh(['ip', 'link', 'set', d, 'up']);
    const cacheDir = mkdtempSync('/tmp/shim6-bpf-noclsact-');
    const out = {};
    try {
      const e = BpfEncap.open({ port: 5533, tun: 'bntun', cacheDir, maxContexts: 16 });
      out.opened = e.links();
      e.close();
    } catch (err) {
      out.error = err.code + ': ' + err.message;
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
    out.pins = existsSync('/sys/fs/bpf/shim6');
    out.bpffs = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - bpf ');
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, ['env', `PATH=${bin}:${process.env.PATH ?? ''}`, process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { opened?: string[]; error?: string; pins: boolean; bpffs: boolean };
  assert.equal(res.opened, undefined, `no encapsulation opened without a link to attach to (before: opened, links ${JSON.stringify(res.opened)})`);
  assert.match(res.error ?? '', /^EBPF: cannot attach the tc programs to any link: bnx\d: Error: Specified qdisc kind is unknown\.$/);
  assert.deepEqual({ pins: res.pins, bpffs: res.bpffs }, { pins: false, bpffs: false }, 'nothing left: no pins, the bpffs it mounted unmounted');
});

test('kernel encapsulation: programs the verifier refuses are no encapsulation: EBPF with the verifier\'s reason, nothing left', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('bv');
  // An object the verifier refuses (a packet read without a bounds check), where the daemon's built
  // object goes: as an older kernel refuses what this one takes (a helper or a check it lacks).
  const dir = mkdtempSync(path.join(tmpdir(), 'shim6-verifier-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'bad.c'), `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc") int shim6_egress(struct __sk_buff *skb) { return *(int *)(long)skb->data; }
SEC("tc") int shim6_ingress(struct __sk_buff *skb) { return 0; }
char LICENSE[] SEC("license") = "GPL";
`);
  const arch = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim();
  // CLANG names alternatives (clang|clang-14): whichever is installed.
  const cc = spawnSync('sh', ['-c', '"$(command -v clang || command -v clang-14)" "$@"', 'sh', '-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, '-c', path.join(dir, 'bad.c'), '-o', path.join(dir, 'bad.o')], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  const script = `
    import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
    const { BpfEncap, buildObject } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const cacheDir = ${JSON.stringify(path.join(dir, 'cache'))};
    mkdirSync(cacheDir, { mode: 0o700 });
    copyFileSync(${JSON.stringify(path.join(dir, 'bad.o'))}, buildObject(cacheDir, 16));
    const out = {};
    try {
      BpfEncap.open({ port: 5533, tun: 'bvtun', cacheDir, maxContexts: 16 }).close();
      out.opened = true;
    } catch (err) {
      out.error = err.code + ': ' + err.message;
    }
    out.pins = existsSync('/sys/fs/bpf/shim6');
    out.bpffs = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - bpf ');
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { opened?: boolean; error?: string; pins: boolean; bpffs: boolean };
  t.diagnostic(res.error ?? '');
  assert.equal(res.opened, undefined, 'refused');
  assert.match(res.error ?? '', /^EBPF: the kernel refused the tc programs: .*shim6_egress.*: the verifier: .*outside of the packet/, 'the verifier\'s reason, not only libbpf\'s "failed to load: -13"');
  assert.deepEqual({ pins: res.pins, bpffs: res.bpffs }, { pins: false, bpffs: false }, 'nothing left: no pins, the bpffs it mounted unmounted');
});

// A daemon killed (SIGKILL) leaves its clsact qdiscs and filters; the next start removed the filters
// but took the clsact for someone else's, and its clean stop then left it, empty, on every link.
// Ours is marked in the kernel with the link (our filters' handle on a clsact we added), so the
// next start knows it, and a clsact someone else has (theirs from before, or ours with their
// filters added since) is never deleted, at a restart or a stop.
test('kernel encapsulation: after a SIGKILL, a restart and a clean stop no clsact of ours is left; someone else\'s, or ours with their filters, is kept', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const ns = net.ns('bk');
  const script = `
    import { spawn, spawnSync } from 'node:child_process';
    import { createInterface } from 'node:readline';
    import { mkdtempSync, rmSync } from 'node:fs';
    const mod = ${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))};
    const { BpfEncap } = await import(mod);
    const sh = (a) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(a.join(' ') + ': ' + r.stderr); return r.stdout; };
    const veth = (a, b) => { sh(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b]); for (const d of [a, b]) sh(['ip', 'link', 'set', d, 'up']); };
    const clsact = (dev) => sh(['tc', 'qdisc', 'show', 'dev', dev]).includes('clsact');
    const filters = (dev) => ['ingress', 'egress'].map((dir) => sh(['tc', 'filter', 'show', 'dev', dev, dir])).join('');
    veth('bkx0', 'bkx1'); // no clsact: ours
    veth('bko0', 'bko1');
    sh(['tc', 'qdisc', 'add', 'dev', 'bko0', 'clsact']); // someone else's, from before
    veth('bkf0', 'bkf1'); // ours, and someone else's filter added to it
    const cacheDir = mkdtempSync('/tmp/shim6-bpf-kill-');
    const out = {};
    try {
      // A daemon's encapsulation, killed.
      const child = spawn(process.execPath, [...${JSON.stringify(TREE_LOADER)}, '--input-type=module', '-e',
        'const { BpfEncap } = await import(' + JSON.stringify(mod) + '); BpfEncap.open({ port: 5533, tun: "bktun", cacheDir: ' + JSON.stringify(cacheDir) + ', maxContexts: 16 }); console.log("open"); setInterval(() => {}, 1000);'],
        { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (l) => { if (l === 'open') resolve(); });
        child.on('exit', (c) => reject(new Error('the first encapsulation exited: ' + c)));
      });
      child.removeAllListeners('exit');
      const gone = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGKILL');
      await gone;
      out.leftAfterKill = ['bkx0', 'bko0', 'bkf0'].filter(clsact);
      // The next start, someone's filter on the clsact it finds on bkf0, and a clean stop.
      const e = BpfEncap.open({ port: 5533, tun: 'bktun', cacheDir, maxContexts: 16 });
      out.attached = e.links().filter((d) => d.startsWith('bk') && d.endsWith('0')).sort();
      sh(['tc', 'filter', 'add', 'dev', 'bkf0', 'ingress', 'pref', '100', 'bpf', 'bytecode', '1,6 0 0 0,']); // classic BPF: matches nothing
      e.close();
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
    out.ours = clsact('bkx0');
    out.theirs = clsact('bko0');
    out.theirFilter = clsact('bkf0') && filters('bkf0').includes('pref 100 ');
    out.anyOfOurs = ['bkx0', 'bko0', 'bkf0'].some((d) => filters(d).includes('shim6_'));
    console.log(JSON.stringify(out));
  `;
  const r = net.run(ns, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 180_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  t.diagnostic(JSON.stringify(res));
  assert.deepEqual(res, { leftAfterKill: ['bkx0', 'bko0', 'bkf0'], attached: ['bkf0', 'bko0', 'bkx0'], ours: false, theirs: true, theirFilter: true, anyOfOurs: false },
    'the killed daemon\'s clsact is gone after the restart\'s clean stop; someone else\'s is kept, and so is ours once someone else\'s filter is on it');
});
