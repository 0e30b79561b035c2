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
import type { StaticNodeConfig } from '../../shim/dataplane/static-node.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
export const NODE_FIXTURE = path.join(HERE, 'fixtures/static-node.ts');
export const STREAM_FIXTURE = path.join(HERE, 'fixtures/tcp-stream.mjs');

export const ADDR = {
  pa: 'fd00:d9::a', pb: 'fd00:d9::b',
  qa: 'fd00:d8::a', qb: 'fd00:d8::b',
} as const;

export interface TwoHosts {
  net: NetLab;
  a: Netns;
  b: Netns;
  nodeA: JsonLines;
  nodeB: JsonLines;
  ulidA: string;
  ulidB: string;
  /** Move both contexts to the Q pair (what REAP would do). */
  rehomeToQ(): Promise<void>;
  /** Start a long-running process in a namespace (killed at cleanup), speaking JSON lines. */
  spawn(ns: Netns, argv: string[]): JsonLines;
}

export interface TwoHostsOptions {
  tcpPrompt?: boolean;
  pathMtu?: number;
  batch?: number;
  /** Only build the namespaces and links (for a direct-link baseline). */
  noNodes?: boolean;
}

export async function twoHosts(hook: AfterHook, opts: TwoHostsOptions = {}): Promise<TwoHosts> {
  const net = new NetLab(hook);
  const a = net.ns('dpha');
  const b = net.ns('dphb');
  const mtu = opts.pathMtu ?? 1500;
  net.veth(a, 'dpP', b, 'dpP', { mtu });
  net.veth(a, 'dpQ', b, 'dpQ', { mtu });
  net.addr(a, 'dpP', `${ADDR.pa}/64`); net.addr(b, 'dpP', `${ADDR.pb}/64`);
  net.addr(a, 'dpQ', `${ADDR.qa}/64`); net.addr(b, 'dpQ', `${ADDR.qb}/64`);
  const spawn = (ns: Netns, argv: string[]) => new JsonLines(net.spawn(ns, argv, { cwd: ROOT }));
  const node = (ns: Netns, me: 'a' | 'b'): JsonLines => {
    const other = me === 'a' ? 'b' : 'a';
    const cfg: StaticNodeConfig = {
      tun: uniqueName('dptun'), port: 5533, pathMtu: mtu, tcpPrompt: opts.tcpPrompt ?? true,
      localUlid: ADDR[`p${me}`], peerUlid: ADDR[`p${other}`],
      localTag: me === 'a' ? 0xa1 : 0xb1, peerTag: me === 'a' ? 0xb1 : 0xa1,
      local: ADDR[`p${me}`], peer: ADDR[`p${other}`], peerLocators: [ADDR[`p${other}`], ADDR[`q${other}`]],
      locators: [ADDR[`p${me}`], ADDR[`q${me}`]],
      ...(opts.batch ? { batch: opts.batch } : {}),
    };
    return spawn(ns, [process.execPath, '--import', 'tsx', NODE_FIXTURE, JSON.stringify(cfg)]);
  };
  let nodeA: JsonLines | undefined, nodeB: JsonLines | undefined;
  if (!opts.noNodes) {
    nodeA = node(a, 'a');
    nodeB = node(b, 'b');
    await nodeA.op('ready', 15_000);
    await nodeB.op('ready', 15_000);
  }
  return {
    net, a, b, ulidA: ADDR.pa, ulidB: ADDR.pb,
    nodeA: nodeA!, nodeB: nodeB!,
    spawn,
    async rehomeToQ() {
      nodeA!.send({ op: 'rehome', local: ADDR.qa, peer: ADDR.qb });
      nodeB!.send({ op: 'rehome', local: ADDR.qb, peer: ADDR.qa });
      await nodeA!.op('rehomed', 3000);
      await nodeB!.op('rehomed', 3000);
    },
  };
}
