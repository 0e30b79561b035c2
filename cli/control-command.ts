/**
 * A CLI command that sends one request to a running shim6's control socket
 * (`shim6 status`, `shim6 flush`) and prints the reply: as text by default,
 * as JSON with --json. The commands differ only in the method and the text.
 */
import type { Command } from 'commander';
import { controlRequest, DEFAULT_CONTROL_SOCKET_HELP, runtimeDefaultControlSocket } from '../shim/daemon/control/client.ts';
import { pathFlag } from './errors.ts';

/** The value of `--socket`, on every command that takes it. */
export const socketPath = pathFlag('--socket', 'the path of a Unix socket');

export function registerControlCommand<R>(program: Command, name: string, description: string, format: (reply: R) => string): void {
  program.command(name)
    .description(description)
    .option('--json', 'print the reply as JSON')
    .option('--socket <path>', `control socket path (default ${DEFAULT_CONTROL_SOCKET_HELP})`, socketPath)
    .action(async (opts: { json?: boolean; socket?: string }) => {
      // The socket `shim6 resolver` run by the same user listens on by default.
      const reply = await controlRequest(opts.socket ?? runtimeDefaultControlSocket(`shim6 ${name}`), name) as R;
      process.stdout.write(opts.json ? JSON.stringify(reply, null, 2) + '\n' : format(reply));
    });
}
