/**
 * `shim6 resolver …` subcommands. Owned by the resolver feature; registered by cli/main.ts.
 */
import type { Command } from 'commander';

export function register(_program: Command): void {
  // Subcommands are added here as the feature lands.
}
