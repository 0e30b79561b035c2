/**
 * The seeded generator moved to test/helpers/rng.ts (issue 21); this re-export
 * keeps the engine tests that still import it from here working. Import
 * test/helpers/rng.ts in new code; remove this file once nothing imports it.
 */
export { SimRng } from '../helpers/rng.ts';
