// The addon's readers and map calls when JavaScript calls them wrongly (native/reader.c, udp.c,
// tun.c, bpfmap.c): a handle used again after its reader closed, buffers of no slots, a buffer
// transferred away while its reader runs, a per-CPU map's value of one CPU's size. Each must be refused or be harmless, never touch memory that is
// not the call's, nor spin the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { loadAddon } from '../../native/addon.ts';
import { needs } from '../helpers/prereq.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

const LOOPBACK = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0));

/** A native UDP socket on [::1] with a reader counting the datagrams it reads. */
function reader(): { port: number; handle: object; got: number[] } {
  const a = loadAddon();
  const [fd, port] = a.udpOpen(0, 0, false, LOOPBACK, false, 0, false);
  const got: number[] = [];
  const handle = a.udpStartReader(fd, new ArrayBuffer(2048 * 4), 2048, 4, new ArrayBuffer(40 * 4), (count) => got.push(count));
  return { port, handle, got };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a reader\'s handle used again long after it was closed (close, ref) does nothing: other readers, made since in its memory, read on', async () => {
  const a = loadAddon();
  // Closed, and their close callbacks run: before, that freed what the handles point to.
  const stale = Array.from({ length: 24 }, () => reader().handle);
  for (const h of stale) a.udpClose(h);
  await turn();
  await turn();
  // New readers, whose memory may be the freed readers' (the allocator hands it out again).
  const live = Array.from({ length: 24 }, () => reader());
  try {
    for (const h of stale) {
      a.udpClose(h);
      a.udpRef(h, false);
      a.close(h);
    }
    const s = createSocket('udp6');
    try {
      for (const r of live) await new Promise<void>((ok) => s.send(Buffer.alloc(8), r.port, '::1', () => ok()));
    } finally {
      s.close();
    }
    const end = Date.now() + DEADLINE_MS;
    while (live.some((r) => r.got.length === 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(live.map((r) => r.got.length > 0), live.map(() => true), 'every live reader read its datagram');
  } finally {
    for (const r of live) a.udpClose(r.handle);
  }
});

test('readers of no slots are refused (RangeError): recvmmsg or read would take nothing, and the level-triggered poll would call again at once, for ever', () => {
  const a = loadAddon();
  const [fd] = a.udpOpen(0, 0, false, LOOPBACK, false, 0, false);
  try {
    assert.throws(() => a.udpStartReader(fd, new ArrayBuffer(2048), 2048, 0, new ArrayBuffer(40), () => {}), RangeError);
    assert.throws(() => a.startReader(fd, new ArrayBuffer(2048), 2048, 0, new Int32Array(1), () => {}, false), RangeError);
    assert.throws(() => a.startReader(fd, new ArrayBuffer(2048), 0, 1, new Int32Array(1), () => {}, false), RangeError, 'slots of no octets');
  } finally {
    // Refused: the socket is still the caller's.
    const h = a.udpStartReader(fd, new ArrayBuffer(2048), 2048, 1, new ArrayBuffer(40), () => {});
    a.udpClose(h);
  }
});

test('a reader whose buffer was transferred away (structuredClone with a transfer list) writes nothing into the memory now another buffer\'s: it closes itself at its next wake-up', async () => {
  const a = loadAddon();
  const [fd, port] = a.udpOpen(0, 0, false, LOOPBACK, false, 0, false);
  const buf = new ArrayBuffer(2048 * 4);
  let reads = 0;
  const handle = a.udpStartReader(fd, buf, 2048, 4, new ArrayBuffer(40 * 4), () => { reads++; });
  // The memory now belongs to `moved`; `buf` is detached (length 0).
  const moved = structuredClone(buf, { transfer: [buf] });
  assert.equal(buf.byteLength, 0);
  // A connected sender: once the reader's socket is closed, the kernel answers Port Unreachable (ECONNREFUSED).
  const s = createSocket('udp6');
  let refused = false;
  s.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNREFUSED') refused = true; });
  await new Promise<void>((ok) => s.connect(port, '::1', () => ok()));
  try {
    const end = Date.now() + DEADLINE_MS;
    while (!refused && reads === 0 && Date.now() < end) {
      s.send(Buffer.alloc(64, 0x5a));
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    s.close();
    a.udpClose(handle);
  }
  assert.equal(reads, 0, 'nothing was read into the transferred memory');
  assert.equal(new Uint8Array(moved).some((b) => b !== 0), false, 'the memory, now another buffer\'s, is untouched');
  assert.equal(refused, true, 'the reader closed its socket');
});

test('a per-CPU map\'s value of one CPU\'s size is refused (EINVAL), not overrun by the kernel; the value once per possible CPU is taken (bpf maps in a bpffs of its own)', (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount', 'bpftool'] })) return;
  const script = `
    import { readFileSync } from 'node:fs';
    const { loadAddon } = await import(${JSON.stringify(treeModule('native/addon.ts'))});
    const a = loadAddon();
    let cpus = 0;
    for (const r of readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',')) {
      const [lo, hi] = r.split('-').map(Number);
      cpus += (hi ?? lo) - lo + 1;
    }
    const fd = a.bpfObjGet('/sys/fs/bpf/pc');
    const key = new Uint8Array(4);
    // One CPU's value at the start of a larger buffer: what follows it must stay as it is.
    const area = new Uint8Array(4096).fill(0xee);
    const lookup = a.bpfMapLookup(fd, key, area.subarray(0, 8));
    const after = area.subarray(8).every((b) => b === 0xee);
    const update = a.bpfMapUpdate(fd, key, area.subarray(0, 8));
    const whole = new Uint8Array(8 * cpus);
    for (let c = 0; c < cpus; c++) whole[8 * c] = 1;
    const updateWhole = a.bpfMapUpdate(fd, key, whole);
    const back = new Uint8Array(8 * cpus);
    const lookupWhole = a.bpfMapLookup(fd, key, back);
    console.log(JSON.stringify({ cpus, lookup, after, update, updateWhole, lookupWhole, same: back.every((b, i) => b === whole[i]), sum: a.bpfPercpuSum(fd, key) }));
  `;
  const sh = `set -e
    mount -t bpf bpf /sys/fs/bpf
    bpftool map create /sys/fs/bpf/pc type percpu_array key 4 value 8 entries 1 name pc
    "$@"`;
  // A private mount namespace with a bpffs of its own: the host's bpffs is not touched.
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', sh, 'sh', process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | boolean>;
  t.diagnostic(JSON.stringify(res));
  assert.equal(res.lookup, -22, 'a lookup into one CPU\'s value is refused');
  assert.equal(res.after, true, 'the octets after it are untouched');
  assert.equal(res.update, -22, 'an update from one CPU\'s value is refused (the kernel would read past it)');
  assert.deepEqual([res.updateWhole, res.lookupWhole, res.same], [0, 0, true], 'the value once per possible CPU is written and read');
  assert.equal(res.sum, res.cpus, 'and summed');
});

test('string arguments longer than the addon takes are refused by their UTF-8 length, not cut at a character and taken as another name', () => {
  const a = loadAddon();
  // Two-octet characters: the copy stops one octet short of the buffer's end, which passed the length checks.
  assert.equal(a.notify(`@${'é'.repeat(60)}`, 'X=1'), -36, 'ENAMETOOLONG, as for the same length in ASCII');
  assert.equal(a.notify(`@${'e'.repeat(120)}`, 'X=1'), -36);
  assert.equal(a.bpfObjGet(`//${'é'.repeat(2100)}`), -22, 'EINVAL: longer than a path');
  assert.equal(a.nftCountersOpen(`//${'é'.repeat(2100)}`), -22);
  const fd = a.nftCountersOpen(null);
  assert.ok(fd >= 0, `nftCountersOpen: ${fd}`);
  try {
    assert.equal(a.nftCountersRead(fd, 10, `tt${'é'.repeat(200)}`), -22, 'a table name longer than nftables takes');
  } finally {
    a.nftCountersClose(fd);
  }
});
