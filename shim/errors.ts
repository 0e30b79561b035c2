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

/**
 * Codes, one style for every class: errno-like, `E` and upper case, an underscore
 * only between words (`EROUTE`, `ECONTROL_NOT_SOCKET`). Each class has its union.
 */
export type UsageErrorCode =
  | 'EINVALID'          // a flag's or key's value is not one it takes
  | 'EMISSING'          // a required flag is not given
  | 'ECONFIG'           // the config file: unreadable, not YAML, an unknown key
  | 'EADDR' | 'EADDRESS' | 'EPREFIX' | 'EMTU' | 'ELIMIT' | 'EPROFILE' | 'EREPLY_LIMIT' | 'EVERIFY_LIMIT' | 'ETIMER' | 'ERANDOM'
  | 'EKEY' | 'ETSIG_KEY' | 'ETOOLARGE' | 'ESEC' | 'ECOLLISION_COUNT' | 'EGENERATION' | 'EINVENTORY' | 'ECAPABILITY_RECORD'
  | 'ECGA_KEY' | 'ECGA_KEY_MISMATCH' | 'ECGA_PARAMS' | 'ECGA_SEARCH' | 'EHBA_PARAMS' | 'ENO_CGA_KEY' | 'ENO_CGA_PARAMS'
  | 'ENO_LOCATORS'      // an engine configured without a local locator
  | 'ECONTROL_PATH'     // a control socket path too long for a Unix socket
  | 'EUDPBACKEND'       // a UDP backend that cannot do what the config asks
  | 'EUDPCLOSED'        // a closed socket used again (API misuse)
  | 'EDNS_KEY';         // dnsUpdate's TSIG key file holds no usable key

/** The host refused (nobody's input is wrong). */
export type EnvironmentErrorCode =
  | 'ENOTROOT' | 'ETUNOPEN' | 'EROUTE' | 'EUDPBIND' | 'ENOLOCATOR' | 'ENATIVE'
  | 'ECONTROL_NOT_SOCKET' | 'ECONTROL_IN_USE'
  | 'ECONTROL_BIND'      // the control socket cannot be made: its directory cannot be made or written
  | 'ESERVICE_PATH' | 'ESERVICE_SYSTEMCTL' | 'ESERVICE_TEMPLATE'
  | 'ESERVICE_OWNER'     // a file the service would run as root is not root's alone (shim6 service install)
  | 'EMETRICS_LISTEN'    // the metrics endpoint cannot listen
  | 'EKERNELPATH'        // nftables refused the kernel path's table (dataPath: kernel)
  | 'EBPF'               // clang, bpftool or the kernel refused the kernel encapsulation's tc programs (dataPath: kernel)
  | 'EBPF_PINS'          // the tc programs' pin directory is not root's alone, or holds what is not a pin: left as it is
  | 'EDAEMON_RUNNING'    // another shim6 daemon runs in this network namespace: nothing was changed
  | 'EDAEMON_LOCK'       // the one-daemon-per-namespace lock cannot be taken: its directory is not root's alone, or flock failed
  | 'ENEWFLOWS'          // host-based discovery's nftables table or log group refused
  | 'ERESOLVCONF'        // the DNS hand-over: resolv.conf or the saved original could not be read, written or restored; resolvectl failed
  | 'ERESOLVCONF_BUSY'   // another live shim6 holds the DNS hand-over
  | 'ELAB_RUNNING'       // a lab of that prefix is running (shim6 lab up/demo without --replace)
  | 'ETOOL'              // a program the lab or a bench runs is not installed
  | 'EOUTPUT'            // a file the CLI would write is a symbolic link (not followed: shim6 pcap) or cannot be written (zone --out)
  | 'ECGA_KEY' | 'ECGA_ADDRESS' | 'EDNS_KEY' // a key file the host will not let us read; our CGA not addable
  | 'EWORKER';           // a worker thread failed with something that is not a Shim6Error

/** A peer (a DNS server, here) broke the protocol or refused: EDNS_<rcode name>, ETSIG_<TSIG error name>. */
export type ProtocolErrorCode = 'EDNS_ANSWER' | 'ETSIG_UNVERIFIED' | `EDNS_${string}` | `ETSIG_${string}`;

/** A caller misused an API, a CLI flag or a config key. `field` names the input. */
export class UsageError extends Shim6Error {
  readonly code: UsageErrorCode;
  readonly field: string | undefined;
  constructor(code: UsageErrorCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

/**
 * The code of a bad value, by where `field` says it came from: a command-line flag
 * (`--workers`) is EINVALID, a config file's key (`workers`, `cache.maxEntries`) ECONFIG.
 * For checks that serve both, so that a flag's value is never reported as the file's.
 */
export function badValueCode(field: string): 'EINVALID' | 'ECONFIG' {
  return field.startsWith('--') ? 'EINVALID' : 'ECONFIG';
}

/** The peer broke the protocol with well-formed bytes. */
export class ProtocolError extends Shim6Error {
  readonly code: ProtocolErrorCode;
  /** The DNS RCODE the peer answered with, by name (`NOTAUTH`), when there was one. */
  readonly rcode: string | undefined;
  constructor(code: ProtocolErrorCode, message: string, rcode?: string) {
    super(message);
    this.code = code;
    this.rcode = rcode;
  }
}

/**
 * The host refused: something on it is not what we need and is not ours to change
 * (say, a regular file where the control socket goes). `path` names the file when
 * there is one. The CLI exits 1, as for any failure that is not a usage error.
 */
export class EnvironmentError extends Shim6Error {
  readonly code: EnvironmentErrorCode;
  readonly path: string | undefined;
  constructor(code: EnvironmentErrorCode, message: string, path?: string) {
    super(message);
    this.code = code;
    this.path = path;
  }
}

/** A Shim6Error as plain data, to cross a worker-thread boundary (structured clone keeps no class). */
export interface ErrorData {
  class: string;
  code: string;
  message: string;
  /** UsageError's `field`, EnvironmentError's `path`, ProtocolError's `rcode`. */
  detail?: string | undefined;
}

/** `err` as ErrorData; anything that is not a Shim6Error travels as EnvironmentError EWORKER. */
export function errorToData(err: unknown): ErrorData {
  if (err instanceof UsageError) return { class: 'UsageError', code: err.code, message: err.message, detail: err.field };
  if (err instanceof EnvironmentError) return { class: 'EnvironmentError', code: err.code, message: err.message, detail: err.path };
  if (err instanceof ProtocolError) return { class: 'ProtocolError', code: err.code, message: err.message, detail: err.rcode };
  const e = err as { code?: unknown; message?: unknown };
  return { class: 'EnvironmentError', code: typeof e?.code === 'string' ? e.code : 'EWORKER', message: String(e?.message ?? err) };
}

/** The error again, with its class (UsageError stays a command-line mistake on the other side: exit 2). */
export function errorFromData(d: ErrorData): Shim6Error {
  if (d.class === 'UsageError') return new UsageError(d.code as UsageErrorCode, d.message, d.detail);
  if (d.class === 'ProtocolError') return new ProtocolError(d.code as ProtocolErrorCode, d.message, d.detail);
  return new EnvironmentError(d.code as EnvironmentErrorCode, d.message, d.detail);
}
