/**
 * `shim6 status …` subcommands. Owned by the status feature; registered by cli/main.ts.
 */
import type { Command } from 'commander';

export function register(_program: Command): void {
  // Subcommands are added here as the feature lands.
}
