// The `shim6` command run from its TypeScript sources (tsx compiles them on
// load), for the tests: a test run from the sources then needs no build.
// bin/shim6.js, the command users run, runs the compiled dist/ instead;
// test/install/ runs that one (helpers/cli.ts BUILT_BIN).
import { register } from 'tsx/esm/api';

register();
await import('../../cli/entry.ts');
