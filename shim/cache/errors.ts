/**
 * CacheDataError: what `import()` of the capability caches throws when the data
 * (read by the daemon from a file on disk) is not what `export()` writes. The
 * caches own this error; they must not know where the data came from.
 */
import { Shim6Error } from '../errors.ts';

export type CacheDataErrorCode =
  | 'ECACHE_FORMAT'   // not an object of the exported shape (wrong type, missing array)
  | 'ECACHE_VERSION'  // a version this code does not read
  | 'ECACHE_ENTRY';   // one entry is malformed (bad address, source, number…)

/** Malformed cache data. `path` names the offending field (`positive[3].ulid`). */
export class CacheDataError extends Shim6Error {
  readonly code: CacheDataErrorCode;
  readonly path: string;
  constructor(code: CacheDataErrorCode, path: string, why: string) {
    super(`${path}: ${why}`);
    this.code = code;
    this.path = path;
  }
}
