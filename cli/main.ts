/**
 * The `shim6` command line: one program, one subcommand per task, `--help` on each.
 * Each feature registers its subcommands from cli/commands/<feature>.ts.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeError, EXIT_USAGE } from './errors.ts';
import * as wire from './commands/wire.ts';
import * as zone from './commands/zone.ts';
import * as resolver from './commands/resolver.ts';
import * as status from './commands/status.ts';
import * as flush from './commands/flush.ts';
import * as daemon from './commands/daemon.ts';
import * as lab from './commands/lab.ts';
import * as service from './commands/service.ts';
import { packageRoot } from '../shim/runtime-paths.ts';

const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('shim6')
    .description('IPv6 multihoming for unmodified applications (Shim6, RFC 5533/5534/5535)')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const feature of [wire, zone, resolver, status, flush, daemon, service, lab]) feature.register(program);
  // Every subcommand inherits exitOverride so that errors come back here.
  const walk = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(walk);
  };
  walk(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exitCode 0; commander already printed them.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    const { line, exitCode } = describeError(err);
    process.stderr.write(line + '\n');
    process.exitCode = exitCode;
  }
}
