/**
 * The tree a test runs from. `npm test` compiles the tests and the sources they
 * import into dist-test/ (scripts/build.mjs `buildTests`) and runs them with
 * plain node; a test file run by hand (`node --import tsx --test test/…`) runs
 * from the sources. The programs the tests start through shim/runtime-paths.ts
 * (daemons, the zone tool, the lab's tools) do not depend on this; the tests'
 * own programs and modules (fixtures, tools, inline scripts) do, and find
 * themselves here.
 */
import path from 'node:path';
import { packageRoot } from '../../shim/runtime-paths.ts';

/** True when this test runs compiled (dist-test/), false from the TypeScript sources. */
export const TESTS_COMPILED = !import.meta.url.endsWith('.ts');

/** The root of the tree this test runs from: the repository, or dist-test/ in it. */
export const TREE = TESTS_COMPILED ? path.join(packageRoot, 'dist-test') : packageRoot;

/** The file of module `source` (a `.ts` path relative to the repository root) in this tree. */
export function treeModule(source: string): string {
  if (!source.endsWith('.ts')) throw new TypeError(`not a TypeScript module path: ${source}`);
  return path.join(TREE, TESTS_COMPILED ? `${source.slice(0, -3)}.js` : source);
}

/** node's arguments before a module or `-e` script from this tree: tsx's loader when it runs from the sources. */
export const TREE_LOADER: string[] = TESTS_COMPILED ? [] : ['--import', 'tsx'];

/** node's arguments that run module `source` (relative to the repository root) as a program from this tree. */
export function treeNodeArgs(source: string): string[] {
  return [...TREE_LOADER, treeModule(source)];
}
