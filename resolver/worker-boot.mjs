// Entry of a resolver worker thread (workers.ts). The sources are TypeScript:
// the thread registers tsx for itself, as bin/shim6.js does for the process,
// then loads worker.ts.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
