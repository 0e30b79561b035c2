// Entry of a resolver worker thread (workers.ts). Compiled (dist/resolver/,
// where `npm run build` copies this file next to worker.js) it loads worker.js.
// From the TypeScript sources the thread registers tsx for itself, as a test
// run from the sources does for the process, then loads worker.ts.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./worker.js', import.meta.url))) {
  await import('./worker.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./worker.ts');
}
