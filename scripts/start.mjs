// `npm start`: install what is missing, then run the most complete thing this
// machine allows, saying what it does and why:
//  * as root: the two-host lab demo (`shim6 lab demo`): namespaces, TUN,
//    Knot, a TCP stream that survives a silent link failure;
//  * otherwise (or if the demo cannot run): the stub resolver with the engine
//    on a loopback address, and what the rest would need.
// It never ends in a stack trace: every step that fails is reported and the
// next-best thing runs.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeDeps, ensureSystemPackages } from './ensure.mjs';
import { ensureBuilt } from './build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => console.error(`npm start: ${line}`);
const isRoot = process.getuid?.() === 0;

try {
  ensureNodeDeps();
} catch (err) {
  say(`could not install node dependencies (${err.message}); trying with what is there`);
}
try {
  await ensureBuilt();
} catch (err) {
  say(`could not build dist/ (${err.message}); the shim6 command needs it`);
}
let missing = [];
try {
  missing = ensureSystemPackages({ quiet: true });
} catch (err) {
  say(`could not install Debian packages (${err.message})`);
}

const shim6 = (args, opts = {}) => spawnSync(process.execPath, [path.join(root, 'bin/shim6.js'), ...args], { stdio: 'inherit', cwd: root, ...opts });
const has = (sub) => spawnSync(process.execPath, [path.join(root, 'bin/shim6.js'), sub, '--help'], { stdio: 'ignore', cwd: root }).status === 0;
const labNeeds = ['knot', 'knot-dnsutils', 'nftables', 'iproute2'];

/**
 * A lab prefix nobody uses: `lab`, else `lab1` … `lab99`, whose namespaces
 * (<prefix>a, b, dns, x, sw) do not exist, so a lab already running on this
 * machine (someone's `shim6 lab up`, another `npm start`) is left alone.
 */
function freeLabPrefix() {
  const have = new Set(existsSync('/run/netns') ? readdirSync('/run/netns') : []);
  for (let i = 0; i < 100; i++) {
    const prefix = i === 0 ? 'lab' : `lab${i}`;
    if (!['a', 'b', 'dns', 'x', 'sw'].some((s) => have.has(prefix + s))) return prefix;
  }
  return undefined;
}

if (isRoot && has('lab')) {
  const lacking = missing.filter((p) => labNeeds.includes(p));
  if (lacking.length) {
    say(`the lab demo needs ${lacking.join(', ')}, which could not be installed; running the resolver instead`);
  } else {
    const prefix = freeLabPrefix();
    if (prefix === undefined) {
      say('every lab prefix lab, lab1 … lab99 is in use on this machine; running the resolver instead');
    } else {
      say(`running the two-host lab demo (shim6 lab demo --prefix ${prefix}): hosts A and B, links P and Q, Knot; link P is silently black-holed mid-stream`);
      const r = shim6(['lab', 'demo', '--prefix', prefix, '--plot', 'shim6-lab-demo.svg']);
      if (r.status === 0) {
        say(`throughput plot written to shim6-lab-demo.svg; \`shim6 lab demo --mode mptcp --prefix ${prefix}\` shows Linux MPTCP in the same lab`);
        process.exit(0);
      }
      // The demo removes its own lab however it ends; only a demo killed by a signal leaves one.
      say(`the lab demo did not complete (exit ${r.status ?? r.signal}); running the resolver instead`);
      if (r.signal) shim6(['lab', 'down', '--prefix', prefix], { stdio: 'ignore' });
    }
  }
} else if (!isRoot) {
  say('not root: the lab demo needs root (network namespaces, veth links, a TUN device, routes).');
  say('Running the stub resolver with the engine on loopback instead; run `sudo npm start` for the demo.');
}

/**
 * A loopback port free for UDP and TCP, for the stub: not a fixed one (5353 is mDNS's, which
 * avahi-daemon holds on 0.0.0.0 on most desktop hosts), the kernel's pick for UDP, checked for TCP.
 */
async function freeLoopbackPort() {
  for (let i = 0; i < 20; i++) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise((resolve, reject) => { udp.once('error', reject); udp.bind(0, '127.0.0.1', () => resolve(udp.address().port)); });
    const tcp = net.createServer();
    const free = await new Promise((resolve) => { tcp.once('error', () => resolve(false)); tcp.listen(port, '127.0.0.1', () => resolve(true)); });
    await new Promise((resolve) => { tcp.close(() => resolve()); });
    udp.close();
    if (free) return port;
  }
  return 5300;
}

if (has('resolver')) {
  // Loopback, a free unprivileged port; upstreams from /etc/resolv.conf. Ctrl-C stops it.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shim6-start-'));
  const port = await freeLoopbackPort();
  say(`stub resolver on 127.0.0.1:${port} (try: dig @127.0.0.1 -p ${port} example.org AAAA); control socket ${dir}/control.sock (shim6 status --socket …); Ctrl-C stops it`);
  // Ctrl-C reaches the resolver too (the terminal's process group): it stops, and this script tidies up after it.
  process.on('SIGINT', () => {});
  const r = shim6(['resolver', '--listen', `127.0.0.1:${port}`, '--socket', path.join(dir, 'control.sock')]);
  rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0 && r.status !== null) say(`the resolver stopped (exit ${r.status}): see the message above`);
  process.exit(0);
}
say('neither the lab nor the resolver is available in this build; nothing to run');
process.exit(0);
