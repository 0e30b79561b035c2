#!/usr/bin/env -S node --no-memory-reducer
// Entry point of the `shim6` command. It runs the compiled JavaScript in dist/
// (`npm run build`; `npm install` in a checkout builds it, and the package
// ships it), so no TypeScript is compiled at start and tsx is not needed.
// The first line's V8 flags are SHIM6_V8_FLAGS (shim/runtime-paths.ts says why).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/entry.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`shim6: error ENOTBUILT: ${entry.pathname} is missing: run \`npm run build\` in ${new URL('..', import.meta.url).pathname}\n`);
  process.exit(1);
}
await import(entry.href);
