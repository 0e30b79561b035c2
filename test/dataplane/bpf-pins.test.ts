// The kernel encapsulation's pin directory is root's alone. A bpffs mounted without a mode is
// writable by everyone (1777), so another user may make /sys/fs/bpf/shim6 first and fill it with
// links: root's removal of "its" stale pins must then remove nothing, and follow nothing.
// The attack runs for real: a bpffs of its own in a private mount namespace, the directory
// planted by user nobody, the daemon's removal run as root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLANG, needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';
import { pinDirProblem, removePins } from '../../shim/dataplane/bpf-encap.ts';
import { EnvironmentError } from '../../shim/errors.ts';

const NOBODY = 65534;

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'shim6-pins-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A pin directory as bpftool leaves it: programs, and maps/ with the maps. */
function pins(dir: string): void {
  mkdirSync(path.join(dir, 'maps'), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const f of ['shim6_egress', 'shim6_ingress']) writeFileSync(path.join(dir, f), '');
  for (const f of ['shim6_egr', 'shim6_ing']) writeFileSync(path.join(dir, 'maps', f), '');
}

test('root\'s own pin directory: its pins and maps/ go, the directory too', (t) => {
  const dir = path.join(scratch(t), 'shim6');
  pins(dir);
  assert.equal(pinDirProblem(dir), undefined);
  removePins(dir);
  assert.equal(existsSync(dir), false);
  assert.doesNotThrow(() => removePins(dir), 'nothing there: nothing to do');
});

test('a pin directory another user could change: refused whole, nothing removed, no link followed', (t) => {
  if (!needs(t, { root: true })) return;
  const base = scratch(t);
  const victim = path.join(base, 'victim');
  writeFileSync(victim, 'root\'s\n');
  const cases: Array<[string, (dir: string) => void, RegExp]> = [
    ['owned by nobody, a link to root\'s file inside', (dir) => { symlinkSync(victim, path.join(dir, 'x')); chownSync(dir, NOBODY, NOBODY); }, /belongs to uid 65534/],
    ['root\'s but writable by everyone', (dir) => chmodSync(dir, 0o777), /writable by everyone/],
    ['its maps/ owned by nobody', (dir) => { symlinkSync(victim, path.join(dir, 'maps', 'x')); chownSync(path.join(dir, 'maps'), NOBODY, NOBODY); }, /maps belongs to uid 65534/],
    ['a directory of another kind inside', (dir) => mkdirSync(path.join(dir, 'stray')), /stray is a directory where only pins belong/],
  ];
  for (const [what, plant, why] of cases) {
    const dir = path.join(base, what.replace(/\W+/g, '-'));
    pins(dir);
    plant(dir);
    assert.throws(() => removePins(dir), (e: unknown) => e instanceof EnvironmentError && e.code === 'EBPF_PINS' && why.test(e.message), what);
    assert.equal(existsSync(path.join(dir, 'shim6_ingress')), true, `${what}: nothing removed`);
    assert.equal(readFileSync(victim, 'utf8'), 'root\'s\n', `${what}: the link's target untouched`);
  }
  // The directory itself a link (to a directory of root's): not followed.
  const real = path.join(base, 'real');
  pins(real);
  const link = path.join(base, 'link');
  symlinkSync(real, link);
  assert.match(pinDirProblem(link) ?? '', /is a symbolic link/);
  assert.throws(() => removePins(link), { code: 'EBPF_PINS' });
  assert.equal(existsSync(path.join(real, 'shim6_egress')), true);
  // A directory above that others may write and that is not sticky: they could swap the pin directory.
  const open = path.join(base, 'open');
  mkdirSync(open, { mode: 0o777 });
  chmodSync(open, 0o777);
  assert.match(pinDirProblem(path.join(open, 'shim6')) ?? '', /open is writable by everyone \(mode 777\)/);
  chmodSync(open, 0o1777);
  assert.equal(pinDirProblem(path.join(open, 'shim6')), undefined, 'sticky, as a bpffs mounted without a mode: others cannot rename root\'s entries');
});

test('on a bpffs writable by everyone, user nobody plants /sys/fs/bpf/shim6 with links: the daemon\'s removal refuses and removes nothing', (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'setpriv', 'mount'] })) return;
  const base = scratch(t);
  chmodSync(base, 0o755);
  const victim = path.join(base, 'victim');
  writeFileSync(victim, 'root\'s\n');
  const script = `
    import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))}).then((m) => {
      try { m.removeStaleEncap(); console.log('REMOVED'); } catch (e) { console.log('REFUSED ' + e.code + ': ' + e.message); }
    });`;
  // A private mount namespace with a bpffs of its own at /sys/fs/bpf, mounted as the daemon did before
  // (no mode: 1777). The host's bpffs, and any lab's, are not touched.
  // A network namespace of its own too: the removal looks for our tc filters on every link, and finds only lo.
  const sh = `set -e
    victim="$1"; shift
    mount -t bpf bpf /sys/fs/bpf
    stat -c 'bpffs %a' /sys/fs/bpf
    setpriv --reuid ${NOBODY} --regid ${NOBODY} --clear-groups sh -c 'mkdir /sys/fs/bpf/shim6 /sys/fs/bpf/shim6/maps && ln -s "$1" /sys/fs/bpf/shim6/shim6_egress && ln -s "$1" /sys/fs/bpf/shim6/maps/shim6_egr' sh "$victim"
    "$@"
    ls -l /sys/fs/bpf/shim6`;
  const r = spawnSync('unshare', ['-m', '-n', '--propagation', 'private', 'sh', '-c', sh, 'sh', victim, process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(out, /^bpffs 1777$/m, 'the bpffs is writable by everyone');
  assert.match(out, /REFUSED EBPF_PINS: the pin directory \/sys\/fs\/bpf\/shim6 is not root's alone: \/sys\/fs\/bpf\/shim6 belongs to uid 65534/, out);
  assert.match(out, /shim6_egress -> /, 'the planted link is still there');
  assert.equal(readFileSync(victim, 'utf8'), 'root\'s\n', 'the link\'s target untouched');
});

test('two network namespaces sharing one /sys/fs/bpf (nsenter --net, systemd NetworkNamespacePath=): a start\'s removal of stale pins leaves the live encapsulation\'s of the other namespace', { timeout: 240_000 }, async (t) => {
  // Before, the start-up cleanup of the daemon of namespace B removed /sys/fs/bpf/shim6 whole: the
  // pins of A's live daemon, whose next link then took no programs (`object-pinned`), or B's.
  // A opens the kernel encapsulation for real (in its own `ip netns exec` mount namespace, on the
  // bpffs it mounts there); B runs the start's removal in A's mount namespace and its own network one.
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount', 'nsenter'] })) return;
  const net = new NetLab(t);
  const a = net.ns('bpa');
  const b = net.ns('bpb');
  const cacheDir = scratch(t);
  const tree = `const tree = () => readdirSync('/sys/fs/bpf', { recursive: true }).sort();`;
  const scriptA = `
    import { spawnSync } from 'node:child_process';
    import { readdirSync } from 'node:fs';
    import { createInterface } from 'node:readline';
    const { BpfEncap } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const sh = (a) => { const r = spawnSync(a[0], a.slice(1), { encoding: 'utf8' }); if (r.status !== 0) throw new Error(a.join(' ') + ': ' + r.stderr); return r.stdout; };
    ${tree}
    sh(['ip', 'link', 'add', 'bpa0', 'type', 'veth', 'peer', 'name', 'bpa1']);
    for (const d of ['bpa0', 'bpa1']) sh(['ip', 'link', 'set', d, 'up']);
    const e = BpfEncap.open({ port: 5533, tun: 'bpatun', cacheDir: ${JSON.stringify(cacheDir)}, maxContexts: 16 });
    console.log('OPEN ' + JSON.stringify(tree()));
    for await (const line of createInterface({ input: process.stdin })) break;
    e.close();
    console.log('CLOSED');`;
  const pa = net.spawn(a, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', scriptA]);
  let outA = '';
  pa.stdout!.on('data', (d: Buffer) => { outA += d.toString(); });
  pa.stderr!.on('data', (d: Buffer) => { outA += d.toString(); });
  t.after(() => { pa.stdin!.end(); });
  await waitFor(() => /^OPEN /m.test(outA) || pa.exitCode !== null, 'A\'s encapsulation open', 180_000);
  const opened = /^OPEN (.*)$/m.exec(outA);
  assert.ok(opened, outA);
  const pinsA = JSON.parse(opened[1]!) as string[];
  assert.ok(pinsA.some((f) => f.endsWith('shim6_egress')) && pinsA.some((f) => f.endsWith('maps/shim6_egr')), outA);
  const scriptB = `
    import { readdirSync } from 'node:fs';
    const m = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    ${tree}
    m.removeStaleEncap();
    console.log('AFTER ' + JSON.stringify(tree()));`;
  const rb = spawnSync('nsenter', ['-t', String(pa.pid), '-m', `--net=/run/netns/${b.name}`, process.execPath, ...TREE_LOADER, '--input-type=module', '-e', scriptB], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(rb.status, 0, `${rb.stdout}${rb.stderr}`);
  const after = /^AFTER (.*)$/m.exec(rb.stdout);
  assert.ok(after, rb.stdout);
  assert.deepEqual(JSON.parse(after[1]!), pinsA, 'A\'s pins all kept');
  pa.stdin!.end();
  await waitFor(() => pa.exitCode !== null, 'A closed');
  assert.equal(pa.exitCode, 0, outA);
  assert.match(outA, /^CLOSED$/m);
});
