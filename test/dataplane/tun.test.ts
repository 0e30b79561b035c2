// The TUN compliance suite against the real Linux TUN (in a namespace) and the in-memory twin.
import { test, type TestContext } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { NetLab, uniqueName } from '../helpers/netns.ts';
import { MemoryTun } from '../../shim/dataplane/tun.ts';
import { LinuxTun } from '../../shim/dataplane/tun-linux.ts';
import { buildUdpPacket, splitPacket, IPPROTO_UDP } from '../../shim/dataplane/ip6-packet.ts';
import { tunCompliance, type TunHarness } from './tun-compliance.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

const AGENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/udp-agent.mjs');

test('TunDevice compliance: in-memory twin', async (t) => {
  await tunCompliance(t, async (): Promise<TunHarness> => {
    const local = 'fd00:dd::1', remote = 'fd00:dd::2';
    const tun = new MemoryTun('dpmem0', 1400);
    return {
      tun, local, remote,
      async kernelSend(port, data) { tun.inject(buildUdpPacket(local, remote, 5000, port, data)); },
      async kernelListen(port) {
        const q: Array<{ src: string; data: Uint8Array }> = [];
        tun.onWrite((p) => {
          const s = splitPacket(p);
          if (s && s.dstUlid === local && s.nextHeader === IPPROTO_UDP && ((s.payload[2]! << 8) | s.payload[3]!) === port) {
            q.push({ src: s.srcUlid, data: s.payload.slice(8) });
          }
        });
        return { next: async () => { const x = q.shift(); if (!x) throw new Error('nothing delivered'); return x; } };
      },
    };
  });
});

/** A real TUN moved into a fresh namespace, with a UDP agent as the kernel side. */
async function realTunHarness(t: TestContext, offload = true): Promise<TunHarness> {
  const net = new NetLab(t);
  const ns = net.ns('dpt');
  const tun = LinuxTun.open({ name: uniqueName('dptun'), mtu: 1400, offload });
  assert.equal(tun.offload, offload);
  t.after(() => tun.close());
  // The fd keeps working after the link moves: the test process stays in the
  // host namespace while the kernel side of the device lives in `ns`.
  const mv = spawnSync('ip', ['link', 'set', 'dev', tun.name, 'netns', ns.name], { encoding: 'utf8' });
  if (mv.status !== 0) throw new Error(`moving ${tun.name}: ${mv.stderr}`);
  const local = 'fd00:dd::1', remote = 'fd00:dd::2';
  net.run(ns, ['ip', 'link', 'set', tun.name, 'mtu', '1400', 'up']);
  net.addr(ns, tun.name, `${local}/64`);
  const agent = net.spawn(ns, [process.execPath, AGENT]);
  const lines = readline.createInterface({ input: agent.stdout! });
  type Msg = { op: string; src?: string; port?: number; hex?: string };
  const inbox: Msg[] = [];
  const waiters: Array<() => void> = [];
  lines.on('line', (l) => { inbox.push(JSON.parse(l) as Msg); for (const w of waiters.splice(0)) w(); });
  const take = async (pred: (m: Msg) => boolean, timeoutMs: number): Promise<Msg> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = inbox.findIndex(pred);
      if (i >= 0) return inbox.splice(i, 1)[0]!;
      const left = end - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the kernel-side agent');
      await new Promise<void>((r) => { const tm = setTimeout(r, left); waiters.push(() => { clearTimeout(tm); r(); }); });
    }
  };
  await take((m) => m.op === 'ready', DEADLINE_MS);
  const send = (m: object) => agent.stdin!.write(JSON.stringify(m) + '\n');
  return {
    tun, local, remote,
    async kernelSend(port, data) { send({ op: 'send', dst: remote, port, hex: Buffer.from(data).toString('hex') }); },
    async kernelListen(port) {
      send({ op: 'listen', port });
      await take((m) => m.op === 'listening' && m.port === port, DEADLINE_MS);
      return {
        async next(timeoutMs) {
          const m = await take((x) => x.op === 'recv' && x.port === port, timeoutMs);
          return { src: m.src!, data: new Uint8Array(Buffer.from(m.hex!, 'hex')) };
        },
      };
    },
  };
}

test('TunDevice compliance: real Linux TUN (native addon, offloads on) in a namespace', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  await tunCompliance(t, (st) => realTunHarness(st, true));
});

test('TunDevice compliance: real Linux TUN (native addon, offloads off) in a namespace', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  await tunCompliance(t, (st) => realTunHarness(st, false));
});

test('closing the real TUN removes the interface', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const tun = LinuxTun.open({ name: uniqueName('dptun'), mtu: 1400 });
  assert.equal(spawnSync('ip', ['link', 'show', tun.name]).status, 0);
  await tun.close();
  assert.notEqual(spawnSync('ip', ['link', 'show', tun.name], { stdio: 'ignore' }).status, 0);
});

// What the daemon writes into its TUN it decapsulated from a UDP datagram whose checksum the kernel
// verified (or built itself): with offloads, a packet is written as CHECKSUM_PARTIAL and its own
// checksum is not verified again. A peer's kernel encapsulation leaves that checksum to the device,
// which never completes it across a veth: such a packet must still reach the socket.
test('real TUN with offloads: a packet whose own checksum was never completed still reaches the socket', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const h = await realTunHarness(t, true);
  const rx = await h.kernelListen(7001);
  const p = buildUdpPacket(h.remote, h.local, 5000, 7001, new TextEncoder().encode('partial'));
  const at = 40 + 6;
  const sum = (p[at]! << 8) | p[at + 1]!;
  p[at] = (sum ^ 0x5aa5) >> 8; p[at + 1] = (sum ^ 0x5aa5) & 0xff; // not the packet's checksum
  assert.equal(h.tun.write([p]), 1);
  const got = await rx.next(DEADLINE_MS);
  assert.equal(got.src, h.remote);
  assert.equal(new TextDecoder().decode(got.data), 'partial');
});
