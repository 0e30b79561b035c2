#!/usr/bin/env node
// Entry point of the `shim6` command. The sources are TypeScript; tsx compiles
// them on load so that a fresh clone runs without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
