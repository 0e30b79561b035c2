/**
 * Limits of the resolver's configuration that the command line needs without
 * loading the resolver (cli/commands/resolver.ts: its --help text).
 */

/** The most resolver threads (config key `workers`, `--workers`). */
export const MAX_WORKERS = 64;
