/**
 * The error hierarchy, by who is at fault (h11 / undici style). Every error has a
 * stable `code` that tests assert on; messages are for people and may change.
 *
 * - WireError (shim/wire): malformed bytes from the network.
 * - ProtocolError: the peer sent well-formed bytes that break the protocol.
 * - UsageError: the caller (CLI user, config file, API user) asked for something invalid.
 * - EnvironmentError: the host is not in a state we can work with (a file where a
 *   socket should be…): nobody's input is wrong, and we refuse rather than repair it.
 */
export abstract class Shim6Error extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A caller misused an API, a CLI flag or a config key. `field` names the input. */
export class UsageError extends Shim6Error {
  readonly code: string;
  readonly field: string | undefined;
  constructor(code: string, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

/** The peer broke the protocol with well-formed bytes. */
export class ProtocolError extends Shim6Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The host refused: something on it is not what we need and is not ours to change
 * (say, a regular file where the control socket goes). `path` names the file when
 * there is one. The CLI exits 1, as for any failure that is not a usage error.
 */
export class EnvironmentError extends Shim6Error {
  readonly code: string;
  readonly path: string | undefined;
  constructor(code: string, message: string, path?: string) {
    super(message);
    this.code = code;
    this.path = path;
  }
}
