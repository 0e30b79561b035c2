/**
 * A unit's `SystemCallFilter=` outside systemd: the allow list it names (sets like
 * `@system-service` expanded by `systemd-analyze syscall-filter`, as systemd expands them) is
 * compiled into a small launcher that installs it as a seccomp filter and execs a command. As
 * under systemd, the filter is inherited by everything the command runs; a call outside the list
 * fails with the unit's `SystemCallErrorNumber=` (or kills the process when the unit sets none,
 * systemd's default); `SystemCallArchitectures=native`: a call of another ABI kills it.
 *
 * Only allow lists are read (a `~` deny list is refused): that is all shim6.service uses.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** The unit's SystemCallFilter= words (all its lines together) and its SystemCallErrorNumber=. */
export function unitSyscallFilter(unitText: string): { filter: string[]; errno: string | undefined } {
  const filter: string[] = [];
  for (const m of unitText.matchAll(/^SystemCallFilter=(.*)$/gm)) {
    const words = m[1]!.trim().split(/\s+/).filter(Boolean);
    if (words[0]?.startsWith('~')) throw new Error(`a deny list is not supported here: ${m[0]}`);
    filter.push(...words);
  }
  const errno = /^SystemCallErrorNumber=(\S+)\s*$/m.exec(unitText)?.[1];
  return { filter, errno };
}

/** System call names of `words`, sets expanded recursively by systemd-analyze. */
export function expandSyscalls(words: readonly string[]): string[] {
  const names = new Set<string>();
  const seen = new Set<string>();
  const visit = (word: string): void => {
    if (!word.startsWith('@')) { names.add(word); return; }
    if (seen.has(word)) return;
    seen.add(word);
    const r = spawnSync('systemd-analyze', ['syscall-filter', word], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`systemd-analyze syscall-filter ${word}: ${r.stderr.trim()}`);
    for (const line of r.stdout.split('\n').slice(1)) {
      const w = line.trim();
      if (w && !w.startsWith('#')) visit(w);
    }
  };
  for (const w of words) visit(w);
  return [...names].sort();
}

/**
 * Compile the launcher for these names into `dir`; returns its path. Names this architecture does
 * not have are left out by the preprocessor (`#ifdef __NR_x`), as systemd skips them.
 */
export function buildSyscallFilterExec(dir: string, names: readonly string[], errno: string | undefined): string {
  if (names.some((n) => !/^[a-z0-9_]+$/.test(n))) throw new Error(`not a system call name: ${names.find((n) => !/^[a-z0-9_]+$/.test(n))}`);
  if (errno !== undefined && !/^E[A-Z0-9]+$/.test(errno)) throw new Error(`SystemCallErrorNumber=${errno}: only an errno name is supported here`);
  const src = path.join(dir, 'syscall-filter-exec.c');
  const bin = path.join(dir, 'syscall-filter-exec');
  writeFileSync(src, `#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__)
#define NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH"
#endif
static const long allowed[] = {
${names.map((n) => `#ifdef __NR_${n}\n  __NR_${n},\n#endif`).join('\n')}
  -1 };
int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s command [argument...]\\n", argv[0]); return 127; }
  size_t n = 0;
  while (allowed[n] >= 0) n++;
  struct sock_filter *f = calloc(5 + 2 * n, sizeof *f);
  size_t i = 0;
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (size_t k = 0; k < n; k++) {
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[k], 0, 1);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  }
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, ${errno ? `SECCOMP_RET_ERRNO | (${errno} & SECCOMP_RET_DATA)` : 'SECCOMP_RET_KILL_PROCESS'});
  struct sock_fprog prog = { .len = (unsigned short)i, .filter = f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    fprintf(stderr, "seccomp: %s\\n", strerror(errno));
    return 126;
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "exec %s: %s\\n", argv[1], strerror(errno));
  return 127;
}
`);
  const r = spawnSync('cc', ['-O2', '-o', bin, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc ${src}: ${r.stderr.trim()}`);
  return bin;
}
