// Installs what a fresh clone lacks, so that `npm start` and `npm test` work on
// a fresh machine: node dependencies (npm ci) and, when running as root, the
// Debian packages listed in scripts/system-packages.txt. Says what it does.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function missingSystemPackages() {
  const lines = readFileSync(path.join(root, 'scripts/system-packages.txt'), 'utf8').split('\n');
  const missing = [];
  for (const line of lines) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const [pkg, proof] = t.split(/\s+/);
    // The proof is a command, or the absolute path of a file the package installs (a Python module).
    const present = proof.startsWith('/') ? existsSync(proof) : have(proof) || existsSync(`/usr/sbin/${proof}`);
    if (!present) missing.push(pkg);
  }
  return missing;
}

/**
 * Root's tools on PATH: the servers the tests and benchmarks start (knotd, named, unbound,
 * dnsmasq) are in /usr/sbin, which a user's PATH lacks on Debian. The proof of a package above
 * accepts /usr/sbin for the same reason.
 */
export function addSbinToPath() {
  const dirs = (process.env.PATH ?? '').split(':');
  for (const d of ['/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  process.env.PATH = dirs.filter(Boolean).join(':');
}

export function ensureNodeDeps() {
  const lock = path.join(root, 'package-lock.json');
  const stamp = path.join(root, 'node_modules/.package-lock.json');
  const addon = path.join(root, 'native/build/Release/shim6_tun.node');
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= statSync(lock).mtimeMs) {
    // Dependencies are current, but a checkout from before the TUN addon existed has not built it.
    if (existsSync(addon)) return;
    console.error('shim6: building the TUN addon (npm run install → node-gyp)…');
    execFileSync('npm', ['run', 'install', '--silent'], { cwd: root, stdio: 'inherit' });
    return;
  }
  console.error('shim6: installing node dependencies (npm ci, which also builds the TUN addon)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

export function ensureSystemPackages({ quiet = false } = {}) {
  const missing = missingSystemPackages();
  if (missing.length === 0) return [];
  if (process.getuid?.() !== 0) {
    if (!quiet) console.error(`shim6: not root, so not installing Debian packages: ${missing.join(' ')}`);
    return missing;
  }
  console.error(`shim6: installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  return missingSystemPackages();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  ensureNodeDeps();
  const still = ensureSystemPackages();
  if (still.length) console.error(`shim6: still missing: ${still.join(' ')}`);
}
