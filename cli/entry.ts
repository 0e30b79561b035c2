/**
 * The `shim6` program: runs the command line (main.ts) on this process's
 * arguments. bin/shim6.js runs its compiled form (dist/cli/entry.js);
 * `node --import tsx cli/entry.ts …` runs it from the sources.
 */
import { main } from './main.ts';

await main(process.argv);
