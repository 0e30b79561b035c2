/**
 * `shim6 wire …` subcommands. Owned by the wire feature; registered by cli/main.ts.
 */
import type { Command } from 'commander';

export function register(_program: Command): void {
  // Subcommands are added here as the feature lands.
}
