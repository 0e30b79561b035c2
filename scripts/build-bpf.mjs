// Build the kernel path's tc programs (native/bpf/shim6_tc.bpf.c) with clang at install time, into
// native/build/shim6_tc-<hash of the source>.bpf.o, where shim/dataplane/kernel-path.ts looks first
// (else the daemon builds it at start into a cache). Without clang this says so and succeeds: the
// daemon then uses the TUN path (config dataPath: auto).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'native/bpf/shim6_tc.bpf.c');
const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
const out = path.join(root, 'native/build', `shim6_tc-${hash}.bpf.o`);
if (!existsSync(out)) {
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${os.machine()}-linux-gnu`, '-Wall', '-c', src, '-o', tmp], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    console.log(`build-bpf: the kernel path's BPF program was not built (${r.error ? r.error.message : String(r.stderr).trim().split('\n')[0]}); the daemon will use the TUN path`);
  } else {
    renameSync(tmp, out);
  }
}
