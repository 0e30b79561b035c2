/** Temporary directories of tests: made under the system's temporary directory, removed when the test ends. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

/** A fresh directory named `prefix…`, removed with its contents when `t` ends. */
export function tmpdir(t: TestContext, prefix = 'shim6-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
