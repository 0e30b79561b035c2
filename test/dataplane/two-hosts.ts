/**
 * Two namespaces A and B joined by two veth links P and Q, each running a
 * static data-plane node (real TUN, routes, UDP, driver) with one context
 * between their ULIDs (the P addresses) on the pair P. For the forwarding
 * and TCP-prompt tests and the throughput benchmark. Cleaned up by `net`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetLab, uniqueName, type AfterHook, type Netns } from '../helpers/netns.ts';
import { JsonLines } from './json-lines.ts';
import { DEADLINE_MS, sleep, waitFor } from '../helpers/wait.ts';
import type { StaticNodeConfig } from '../../lab/static-node.ts';
import { LAB_HBA } from '../../lab/hba.ts';
import { ROOT } from '../helpers/cli.ts';
import { treeNodeArgs } from '../helpers/tree.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const STREAM_FIXTURE = path.join(HERE, 'fixtures/tcp-stream.mjs');

/** The lab's HBA addresses (lab/hba.ts): members[0] on P is the ULID, members[1] on Q. */
export const ADDR = {
  pa: LAB_HBA.a.members[0]!.address, pb: LAB_HBA.b.members[0]!.address,
  qa: LAB_HBA.a.members[1]!.address, qb: LAB_HBA.b.members[1]!.address,
} as const;

export interface TwoHosts {
  net: NetLab;
  a: Netns;
  b: Netns;
  nodeA: JsonLines;
  nodeB: JsonLines;
  /** TUN interface names in A and B. */
  tunA: string;
  tunB: string;
  ulidA: string;
  ulidB: string;
  engineMode: boolean;
  /** Engine mode: events seen so far, per host. */
  events: { a: Record<string, unknown>[]; b: Record<string, unknown>[] };
  /** Move both contexts to the Q pair (static mode: what REAP would do). */
  rehomeToQ(): Promise<void>;
  /** Start a long-running process in a namespace (killed at cleanup), speaking JSON lines. */
  spawn(ns: Netns, argv: string[]): JsonLines;
}

export interface TwoHostsOptions {
  /** 'static': a fixed context (StaticContextEngine); 'engine': the real Engine, context set up by prime. */
  engine?: 'static' | 'engine';
  tcpPrompt?: boolean;
  pathMtu?: number;
  batch?: number;
  /** `rto_min` on the peer routes (static mode), so TCP's RTO schedule is the same on every run. */
  rtoMinMs?: number;
  /** UDP transport of the nodes (default native). */
  udp?: 'native' | 'dgram';
  /** Only build the namespaces and links (for a direct-link baseline). */
  noNodes?: boolean;
  /**
   * Engine mode: the data path of a context on its ULID pair (default: SHIM6_TEST_DATA_PATH,
   * else the TUN); 'kernel' loads the tc programs (shim/dataplane/kernel-path.ts).
   */
  dataPath?: 'kernel' | 'tun';
  /** With dataPath kernel: a re-homed context on the kernel encapsulation (tc programs; default), or false: on the TUN. */
  encap?: boolean;
}

export async function twoHosts(hook: AfterHook, opts: TwoHostsOptions = {}): Promise<TwoHosts> {
  const net = new NetLab(hook);
  const a = net.ns('dpha');
  const b = net.ns('dphb');
  const mtu = opts.pathMtu ?? 1500;
  net.veth(a, 'dpP', b, 'dpP', { mtu });
  net.veth(a, 'dpQ', b, 'dpQ', { mtu });
  const eng = opts.engine === 'engine';
  net.addr(a, 'dpP', `${ADDR.pa}/64`); net.addr(b, 'dpP', `${ADDR.pb}/64`);
  net.addr(a, 'dpQ', `${ADDR.qa}/64`); net.addr(b, 'dpQ', `${ADDR.qb}/64`);
  const spawn = (ns: Netns, argv: string[]) => new JsonLines(net.spawn(ns, argv, { cwd: ROOT }));
  const tuns = { a: uniqueName('dptun'), b: uniqueName('dptun') };
  const node = (ns: Netns, me: 'a' | 'b'): JsonLines => {
    const other = me === 'a' ? 'b' : 'a';
    const cfg: StaticNodeConfig = {
      tun: tuns[me], port: 5533, pathMtu: mtu, tcpPrompt: opts.tcpPrompt ?? true,
      localUlid: ADDR[`p${me}`], peerUlid: ADDR[`p${other}`],
      localTag: me === 'a' ? 0xa1 : 0xb1, peerTag: me === 'a' ? 0xb1 : 0xa1,
      local: ADDR[`p${me}`], peer: ADDR[`p${other}`], peerLocators: [ADDR[`p${other}`], ADDR[`q${other}`]],
      locators: [ADDR[`p${me}`], ADDR[`q${me}`]],
      ...(opts.batch ? { batch: opts.batch } : {}),
      ...(opts.rtoMinMs ? { rtoMinMs: opts.rtoMinMs } : {}),
      ...(opts.udp ? { udp: opts.udp } : {}),
    };
    const extra = process.env.SHIM6_DP_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    if (eng) {
      const dataPath = opts.dataPath ?? (process.env.SHIM6_TEST_DATA_PATH === 'kernel' ? 'kernel' : 'tun');
      const ecfg = { host: me, tun: cfg.tun, tcpPrompt: cfg.tcpPrompt, dataPath, ...(opts.udp ? { udp: opts.udp } : {}), ...(opts.encap === false ? { encap: false } : {}) };
      return spawn(ns, [process.execPath, ...extra, ...treeNodeArgs('test/dataplane/fixtures/engine-node.ts'), JSON.stringify(ecfg)]);
    }
    return spawn(ns, [process.execPath, ...extra, ...treeNodeArgs('test/dataplane/fixtures/static-node.ts'), JSON.stringify(cfg)]);
  };
  let nodeA: JsonLines | undefined, nodeB: JsonLines | undefined;
  if (!opts.noNodes) {
    nodeA = node(a, 'a');
    nodeB = node(b, 'b');
    await nodeA.op('ready', DEADLINE_MS);
    await nodeB.op('ready', DEADLINE_MS);
  }
  const events = { a: [] as Record<string, unknown>[], b: [] as Record<string, unknown>[] };
  if (eng && nodeA && nodeB) {
    nodeA.onOp('event', (m) => events.a.push(m));
    nodeB.onOp('event', (m) => events.b.push(m));
    nodeA.send({ op: 'prime' });
    const up = (e: Record<string, unknown>): boolean => e.kind === 'context-established';
    await waitFor(() => events.a.some(up) && events.b.some(up), 'a context on both hosts')
      .catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(events)} ${nodeA.stderr.join('')} ${nodeB.stderr.join('')}`); });
  }
  return {
    net, a, b, ulidA: ADDR.pa, ulidB: ADDR.pb, events, engineMode: eng,
    nodeA: nodeA!, nodeB: nodeB!, tunA: tuns.a, tunB: tuns.b,
    spawn,
    async rehomeToQ() {
      nodeA!.send({ op: 'rehome', local: ADDR.qa, peer: ADDR.qb });
      nodeB!.send({ op: 'rehome', local: ADDR.qb, peer: ADDR.qa });
      await nodeA!.op('rehomed', DEADLINE_MS);
      await nodeB!.op('rehomed', DEADLINE_MS);
    },
  };
}

/** Octets B's stream server has received so far (the server keeps running). */
export async function streamedBytes(server: JsonLines): Promise<number> {
  server.send({ op: 'bytes' });
  return (await server.op('bytes', DEADLINE_MS)).bytes as number;
}

/** Wait until B's stream server has received more than `n` octets. */
export async function streamedMoreThan(server: JsonLines, n: number, what: string, ms = DEADLINE_MS): Promise<void> {
  await waitFor(async () => (await streamedBytes(server)) > n, what, ms, 20);
}

/**
 * Stream A → B, black-hole P, re-home to Q, return the receiver's report once the stream has
 * resumed (and `after` ms more, or until `after()` holds, within `afterDeadlineMs`). Static mode:
 * re-home `repairMs` after the cut; engine mode: `repairMs` is the deadline for REAP to do it.
 * The stall is the report's longest gap: a figure to print or benchmark, measured the same way
 * on a quiet machine and a busy one.
 */
export async function stallRun(h: TwoHosts, repairMs: number, after: number | (() => Promise<boolean>) = 0, afterDeadlineMs = DEADLINE_MS) {
  const server = h.spawn(h.b, [process.execPath, STREAM_FIXTURE, 'server', h.ulidB, '7000']);
  await server.op('listening', DEADLINE_MS);
  const client = h.spawn(h.a, [process.execPath, STREAM_FIXTURE, 'client', h.ulidB, '7000']);
  await client.op('connected', DEADLINE_MS);
  await streamedMoreThan(server, 1_000_000, 'the stream to carry 1 MB before the cut');
  h.net.blackhole(h.a, 'dpP');
  const cut = Date.now();
  if (h.engineMode) {
    // The engine finds the failure itself (REAP) and moves to Q.
    await waitFor(() => h.events.a.some((e) => e.kind === 'locator-pair-changed'), 're-homing', repairMs)
      .catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(h.events)}`); });
  } else {
    await sleep(repairMs);
    await h.rehomeToQ();
  }
  const rehomed = Date.now() - cut;
  // Nothing crosses P any more: octets that arrive after this count are the stream resuming on Q.
  await streamedMoreThan(server, await streamedBytes(server), 'the stream to resume after re-homing');
  // Then stream on: `after` ms, or until `after()` holds (what a test must see carried after the re-homing).
  if (typeof after === 'function') {
    await waitFor(after, 'the stream after re-homing', afterDeadlineMs, 100).catch(async (e: Error) => {
      // What A's node saw (paths, counters, drops) and both hosts' engine events: what to look at.
      h.nodeA.send({ op: 'stats' });
      const stats = await h.nodeA.op('stats', DEADLINE_MS).catch(() => ({}));
      throw new Error(`${e.message}; A's stats: ${JSON.stringify(stats)}; events: ${JSON.stringify(h.events)}`);
    });
  } else if (after > 0) await sleep(after);
  client.child.kill('SIGTERM');
  server.send({ op: 'report' });
  const report = await server.op('report', DEADLINE_MS);
  h.nodeA.send({ op: 'stats' });
  const stats = await h.nodeA.op('stats', DEADLINE_MS);
  return { report: report as unknown as { bytes: number; maxGapMs: number; corrupt: number }, stats, rehomedMs: rehomed };
}
