/**
 * The shapes of capability-cache entries are the engine's (shim/engine/
 * capability.ts, the one capability model); this module re-exports them for
 * the cache's own modules and adds the file format's wrapper.
 */
export {
  NEGATIVE_REASONS, POSITIVE_SOURCES,
  type NegativeEntry, type NegativeReason, type PositiveEntry, type PositiveSource, type PrimeLocator as CachedLocator,
} from '../engine/capability.ts';
import type { NegativeEntry, PositiveEntry } from '../engine/capability.ts';

/** Version of the cache file this code writes (1: the earlier vocabulary, still read). */
export const CACHE_FILE_VERSION = 2;

/** What `CapabilityCaches.export()` returns and `import()` reads. */
export interface CachesExport {
  readonly version: typeof CACHE_FILE_VERSION;
  /** Least recently used first. */
  readonly positive: PositiveEntry[];
  readonly negative: NegativeEntry[];
}
