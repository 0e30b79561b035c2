/**
 * unbound on loopback, forwarding every question to an authoritative server of the test's
 * (a reference resolver in the differential test, the recursive resolver of /etc/resolv.conf
 * in the zone tools' tests). Its temporary directory goes with `stop()`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DEADLINE_MS, sleep } from './wait.ts';

export interface UnboundOptions {
  /** `server:` lines beyond the common ones (each a whole line, indented). */
  server: readonly string[];
  /** A name the authoritative server has an SOA for: asked until unbound answers. */
  probe: string;
}

/** A port free on 127.0.0.1 for UDP and TCP right now. */
async function freeUdpTcpPort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

/** Start unbound (iterator only, one thread, no chroot) forwarding "." to 127.0.0.1@`authPort`; resolves once it answers. */
export async function startUnbound(authPort: number, o: UnboundOptions): Promise<{ port: number; stop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shim6-unbound-'));
  const port = await freeUdpTcpPort();
  writeFileSync(path.join(dir, 'unbound.conf'), [
    'server:', `  interface: 127.0.0.1@${port}`, '  num-threads: 1', '  username: ""', '  chroot: ""', `  directory: "${dir}"`,
    `  pidfile: "${dir}/unbound.pid"`, '  use-syslog: no', '  logfile: ""', '  verbosity: 0', '  do-not-query-localhost: no',
    '  module-config: "iterator"', '  qname-minimisation: no', ...o.server,
    'forward-zone:', '  name: "."', `  forward-addr: 127.0.0.1@${authPort}`,
  ].join('\n') + '\n');
  const child = spawn('unbound', ['-d', '-c', path.join(dir, 'unbound.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline && child.exitCode === null) {
    const r = spawnSync('kdig', ['@127.0.0.1', '-p', String(port), '+timeout=1', '+retry=0', o.probe, 'SOA', '+short'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0 && r.stdout.trim()) return { port, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`unbound did not answer: ${log}`);
}
