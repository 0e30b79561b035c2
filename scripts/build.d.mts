// Types of scripts/build.mjs for the tests that import it (test/install/).
export function buildIsCurrent(): boolean;
export function build(): Promise<void>;
export function ensureBuilt(): Promise<void>;
