/**
 * The `shim6` command line: one program, one subcommand per task, `--help` on each.
 * Each feature registers its subcommands from cli/commands/<feature>.ts.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeError, EXIT_USAGE } from './errors.ts';
import { guardStdout } from './stdout.ts';
import { UsageError, type UsageErrorCode } from '../shim/errors.ts';
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

/** commander's errors about the command line, by its code, and the code each is here. */
const COMMANDER_CODES: Record<string, UsageErrorCode> = {
  'commander.unknownOption': 'EINVALID',
  'commander.unknownCommand': 'EINVALID',
  'commander.excessArguments': 'EINVALID',
  'commander.invalidArgument': 'EINVALID',
  'commander.conflictingOption': 'EINVALID',
  'commander.optionMissingArgument': 'EMISSING',
  'commander.missingArgument': 'EMISSING',
  'commander.missingMandatoryOptionValue': 'EMISSING',
};

/** `shim6 zone record`: the words that run `cmd`. */
function commandLine(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * A commander parse error of `cmd` as the CLI's one-line UsageError (exit 2), with its
 * suggestion, if any, on the same line and where the usage is:
 * `unknown command 'stauts'; did you mean status? (see \`shim6 --help\`)`.
 */
function commanderUsageError(err: CommanderError, cmd: Command): UsageError {
  const what = err.message
    .replace(/^error: /, '')
    .replace(/\s*\(Did you mean (.+)\?\)\s*$/, '; did you mean $1?')
    .replace(/\. Expected /, ': expected ')
    .replace(/\.$/, '');
  return new UsageError(COMMANDER_CODES[err.code] ?? 'EINVALID', `${what} (see \`${commandLine(cmd)} --help\`)`);
}

export function buildProgram(): Command {
  const program = new Command('shim6')
    .description('IPv6 multihoming for unmodified applications (Shim6, RFC 5533/5534/5535)')
    .version(pkg.version);
  for (const feature of [wire, zone, resolver, status, flush, daemon, service, lab]) feature.register(program);
  // Every command's errors come back to main() as the CLI's one-line UsageError; commander
  // prints none of its own. --help and --version (exit 0), and the help a command without a
  // subcommand shows on stderr, stay CommanderErrors.
  const walk = (cmd: Command): void => {
    cmd.exitOverride((err) => {
      throw err.exitCode === 0 || err.code === 'commander.help' ? err : commanderUsageError(err, cmd);
    });
    cmd.configureOutput({ outputError: () => {} });
    cmd.commands.forEach(walk);
  };
  walk(program);
  return program;
}

/**
 * The words of `args` that name a subcommand that does not exist, with the words that lead to
 * it (`['zone', 'recrd']`), or undefined. commander shows the parent's help and exits 0 when
 * --help comes with an unknown subcommand (`shim6 stauts --help`), and the program's help on
 * stderr for `shim6 help stauts`: main() parses these words alone instead, so that the name
 * is refused as it is without --help. Only commands that have subcommands and no options
 * taking values or arguments are walked (their words cannot be anything but a subcommand).
 */
export function unknownCommandWords(program: Command, args: readonly string[]): string[] | undefined {
  const words: string[] = [];
  let cmd = program;
  for (const a of args) {
    if (a === '--help' || a === '-h') continue;
    if (a.startsWith('-')) return undefined; // another option: commander's to judge
    if (a === 'help' && !cmd.commands.some((c) => c.name() === 'help')) continue; // `shim6 help status`
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) return [...words, a];
    words.push(a);
    if (sub.commands.length === 0 || sub.registeredArguments.length > 0 || sub.options.some((o) => o.required || o.optional)) return undefined;
    cmd = sub;
  }
  return undefined;
}

/**
 * Run the words after `shim6` on `program`; resolves with the exit status of a failure (0 when
 * nothing failed: an action may still set process.exitCode), whose one line went to `writeErr`.
 */
export async function run(args: readonly string[], program = buildProgram(), writeErr = (s: string): void => { process.stderr.write(s); }): Promise<number> {
  try {
    await program.parseAsync(unknownCommandWords(program, args) ?? [...args], { from: 'user' });
    return 0;
  } catch (err) {
    // --help and --version end with exitCode 0; commander already printed them (and the
    // help it shows on stderr when a subcommand is missing: exit 2).
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    const { line, exitCode } = describeError(err);
    writeErr(line + '\n');
    return exitCode;
  }
}

export async function main(argv: string[]): Promise<void> {
  // Every command's output: a closed or full stdout is one error line, exit 1, not a stack trace.
  guardStdout();
  const status = await run(argv.slice(2));
  if (status !== 0) process.exitCode = status;
}
