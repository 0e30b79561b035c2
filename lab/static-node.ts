/**
 * A whole data-plane node around a StaticContextEngine: real TUN, routes and
 * policy rules, UDP sockets on the given locators, the driver. Used by the
 * namespace tests and `npm run bench -- throughput` to exercise TUN ↔ UDP
 * without the protocol engine, and usable to diagnose a lab by hand.
 *
 * Must not know: the protocol engine, DNS. Everything it sets up is undone
 * by `close()` (the TUN goes with its fd).
 */
import { EngineDriver } from '../shim/dataplane/engine-driver.ts';
import { StaticContextEngine, type StaticContextConfig } from './static-context.ts';
import { LinuxTun } from '../shim/dataplane/tun-linux.ts';
import { DgramTransport, type UdpTransport } from '../shim/dataplane/udp.ts';
import { NativeUdpTransport } from '../shim/dataplane/udp-native.ts';
import { Routes } from '../shim/dataplane/routes.ts';

export interface StaticNodeConfig extends StaticContextConfig {
  tun: string;
  /** Our UDP port and the peer's (docs/wire.md "Transports"). */
  port: number;
  pathMtu: number;
  /** Local locators to listen on. */
  locators: string[];
  tcpPrompt: boolean;
  /** Packets per TUN read batch. */
  batch?: number;
  /** `rto_min` on the peer route (routes.ts), for measurements. */
  rtoMinMs?: number;
  /** UDP transport: the addon's (default) or Node's dgram. */
  udp?: 'native' | 'dgram';
}

export interface StaticNode {
  driver: EngineDriver<StaticContextEngine>;
  routes: Routes;
  tun: LinuxTun;
  close(): Promise<void>;
}

/** Bring a static node up in the current namespace. */
export async function startStaticNode(cfg: StaticNodeConfig): Promise<StaticNode> {
  const routes = new Routes({ tun: cfg.tun, port: cfg.port, pathMtu: cfg.pathMtu, ...(cfg.rtoMinMs ? { rtoMinMs: cfg.rtoMinMs } : {}) });
  const tun = LinuxTun.open({ name: cfg.tun, mtu: routes.tunMtu, ...(cfg.batch ? { batch: cfg.batch } : {}) });
  const transport: UdpTransport = cfg.udp === 'dgram'
    ? new DgramTransport({ port: cfg.port, bufferSize: 4 << 20 })
    : new NativeUdpTransport({ port: cfg.port, bufferSize: 4 << 20, maxDatagram: cfg.pathMtu });
  const engine = new StaticContextEngine(cfg);
  const driver = new EngineDriver({ engine, transport, tun, peerPort: cfg.port, routes, tcpPrompt: cfg.tcpPrompt });
  try {
    routes.setup();
    for (const l of cfg.locators) await driver.bindLocator(l);
    await routes.contextUp(cfg.localUlid, cfg.peerUlid);
  } catch (e) {
    routes.close();
    await driver.close();
    throw e;
  }
  return {
    driver, routes, tun,
    async close() {
      routes.close();
      await driver.close();
    },
  };
}
