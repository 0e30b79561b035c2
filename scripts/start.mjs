// `npm start`: install what is missing, then run the most complete thing this
// machine allows. As root with the lab's tools: the two-host lab demo. Otherwise
// the newest working piece, saying what the rest would need.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeDeps, ensureSystemPackages } from './ensure.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
ensureNodeDeps();
const missing = ensureSystemPackages({ quiet: true });

const shim6 = (args) => spawnSync(process.execPath, [path.join(root, 'bin/shim6.js'), ...args], { stdio: 'inherit' });
const has = (sub) => spawnSync(process.execPath, [path.join(root, 'bin/shim6.js'), sub, '--help'], { stdio: 'ignore' }).status === 0;

if (process.getuid?.() === 0 && missing.length === 0 && has('lab')) {
  const r = shim6(['lab', 'demo']);
  process.exit(r.status ?? 1);
}
if (has('resolver')) {
  if (process.getuid?.() !== 0) console.error('shim6: not root: running the stub resolver with the engine on loopback; the lab demo needs root (namespaces, TUN).');
  const r = shim6(['resolver']);
  process.exit(r.status ?? 1);
}
console.error('shim6: the daemon and resolver are not built yet; writing a demo pcap of every Shim6 message instead.');
const r = shim6(['pcap', '--demo', 'shim6-demo.pcap']);
process.exit(r.status ?? 0);
