/**
 * Where this installation's own files are, and how to run its programs the way
 * this process runs. shim6 runs either compiled (the JavaScript in dist/, built
 * by `npm run build`: what the `shim6` command and an
 * installed package run) or from its TypeScript sources through tsx (tests,
 * development). dist/ mirrors the source tree, so a module finds the package
 * root one level further up when compiled. This is the one module that knows
 * that layout; it does not know what the programs do.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when this code runs from its TypeScript sources (tsx), false when compiled (dist/). */
export const fromSources = import.meta.url.endsWith('.ts');

/**
 * Whether the programs this process starts (the daemons, the zone tool, the
 * lab's stream and web tools) run from the sources too. A process running from
 * the sources starts them from the sources, unless `SHIM6_PROGRAMS=dist` says
 * to start them compiled: `npm test` builds dist/ first and sets it, since a
 * start through tsx costs about half a second of CPU more.
 */
export const programsFromSources = fromSources && process.env.SHIM6_PROGRAMS !== 'dist';

/** The package's root directory (where package.json, bin/ and native/ are), in both cases. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), fromSources ? '..' : '../..');

/**
 * The file that module `source` (a path like `lab/stream.ts`, relative to the
 * package root) is in the programs' mode (`programsFromSources`): the source
 * itself, or its compiled `dist/….js`.
 */
export function moduleFile(source: string): string {
  if (!source.endsWith('.ts')) throw new TypeError(`not a TypeScript module path: ${source}`);
  return programsFromSources ? path.join(packageRoot, source) : path.join(packageRoot, 'dist', `${source.slice(0, -3)}.js`);
}

/**
 * node's arguments that run module `source` as a program, in the programs'
 * mode: from the sources with tsx's loader, named by its resolved URL so that
 * the child finds it whatever its working directory.
 */
export function nodeArgs(source: string): string[] {
  return programsFromSources ? ['--import', import.meta.resolve('tsx'), moduleFile(source)] : [moduleFile(source)];
}

/**
 * The V8 flags node runs the `shim6` command with, wherever this installation
 * starts it: the shebang of bin/shim6.js (`/usr/bin/env -S node …`), the
 * service's ExecStart, the lab's daemons (shim6NodeArgs).
 * `--no-memory-reducer`: V8 otherwise shrinks the heap once allocation has
 * stopped for 8 s (full collections, the young generation back to its
 * smallest), and the next burst of lookups pays for growing it again in
 * collections: 20–30 % more CPU per miss for the first 30,000 misses after a
 * quiet minute. What it gave back was 53 MiB after one burst and 4 MiB after
 * the next, depending on the heap's past; the peak is the same either way
 * (docs/operations.md, "Memory").
 */
export const SHIM6_V8_FLAGS: readonly string[] = ['--no-memory-reducer'];

/**
 * node's arguments that run the `shim6` command in the programs' mode:
 * SHIM6_V8_FLAGS, then bin/shim6.js (the compiled tree) or its entry module
 * from the sources. The lab starts its daemons and zone tool with these, so
 * that a test run from the sources runs the sources throughout (unless
 * `SHIM6_PROGRAMS=dist`).
 */
export function shim6NodeArgs(): string[] {
  return [...SHIM6_V8_FLAGS, ...(programsFromSources ? nodeArgs('cli/entry.ts') : [path.join(packageRoot, 'bin/shim6.js')])];
}
