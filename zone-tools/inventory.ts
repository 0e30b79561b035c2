/**
 * `zone bulk` inventories: the hosts to publish, as CSV or JSON.
 *
 *   CSV:  a header row naming the columns (any order): name, ulid, locators,
 *         and optionally ttl, txt, port, hba. `locators` holds locator specs
 *         separated by spaces or `;`. `#` lines are comments.
 *   JSON: an array of { name, ulid, locators: [..], ttl?, txt?, port?, hba? }.
 *
 * Owns: reading those formats into RecordInputs with the line (CSV) or index
 * (JSON) each came from. Must not know: records, DNS.
 */
import { UsageError } from '../shim/errors.ts';

export interface InventoryRow {
  /** `line 12` (CSV) or `entry 3` (JSON), for failure reports. */
  where: string;
  name: string;
  ulid?: string;
  locators: string[];
  ttl?: string;
  txt?: boolean;
  port?: string;
  /** Path of an HBA parameters file. */
  hba?: string;
}

function bad(source: string, why: string): never {
  throw new UsageError('EINVENTORY', `${source}: ${why}`, 'inventory');
}

function truthy(v: string): boolean {
  return /^(1|yes|true|y)$/i.test(v.trim());
}

/** Split one CSV line (RFC 4180 quotes). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') q = false; else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

const COLUMNS = ['name', 'ulid', 'locators', 'ttl', 'txt', 'port', 'hba'];

export function parseCsvInventory(text: string, source: string): InventoryRow[] {
  const lines = text.split(/\r?\n/);
  // Column name → index of its first occurrence, made once: not a search of the
  // header per cell (a header of many columns times many rows is quadratic).
  let header: Map<string, number> | undefined;
  const rows: InventoryRow[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const fields = csvFields(line);
    if (!header) {
      header = new Map();
      for (const [k, f] of fields.entries()) {
        const h = f.toLowerCase();
        if (!COLUMNS.includes(h)) bad(source, `line ${i + 1}: unknown column ${JSON.stringify(h)} (known: ${COLUMNS.join(', ')})`);
        if (!header.has(h)) header.set(h, k);
      }
      if (!header.has('name') || !header.has('locators')) bad(source, `line ${i + 1}: the header needs at least "name" and "locators"`);
      continue;
    }
    const columns = header;
    const get = (col: string): string | undefined => {
      const k = columns.get(col);
      const v = k === undefined ? undefined : fields[k];
      return v === undefined || v === '' ? undefined : v;
    };
    const row: InventoryRow = { where: `line ${i + 1}`, name: get('name') ?? '', locators: (get('locators') ?? '').split(/[\s;]+/).filter((s) => s !== '') };
    const ulid = get('ulid'); if (ulid !== undefined) row.ulid = ulid;
    const ttl = get('ttl'); if (ttl !== undefined) row.ttl = ttl;
    const txt = get('txt'); if (txt !== undefined) row.txt = truthy(txt);
    const port = get('port'); if (port !== undefined) row.port = port;
    const hba = get('hba'); if (hba !== undefined) row.hba = hba;
    rows.push(row);
  }
  if (!header) bad(source, 'empty inventory (no header row)');
  return rows;
}

export function parseJsonInventory(text: string, source: string): InventoryRow[] {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch (e) { return bad(source, `not JSON: ${(e as Error).message}`); }
  const list = Array.isArray(doc) ? doc : (doc as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(list)) return bad(source, 'expected an array of hosts (or { "hosts": [...] })');
  return list.map((h: unknown, i): InventoryRow => {
    const e = (h ?? {}) as Record<string, unknown>;
    // Scalars only: String() of a nested array recurses, and a deep one is a RangeError.
    const scalar = (k: string, v: unknown): string => {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
      return bad(source, `entry ${i}: "${k}" must be a string or a number`);
    };
    const str = (k: string): string | undefined => (e[k] === undefined || e[k] === null ? undefined : scalar(k, e[k]));
    const locs = e.locators;
    const row: InventoryRow = {
      where: `entry ${i}`,
      name: str('name') ?? '',
      locators: Array.isArray(locs) ? locs.map((l: unknown, j) => scalar(`locators[${j}]`, l)) : typeof locs === 'string' ? locs.split(/[\s;]+/).filter((s) => s !== '') : [],
    };
    for (const k of ['ulid', 'ttl', 'port', 'hba'] as const) { const v = str(k); if (v !== undefined) row[k] = v; }
    if (e.txt !== undefined) row.txt = e.txt === true || (e.txt !== null && truthy(scalar('txt', e.txt)));
    return row;
  });
}

/**
 * JSON when the text starts with `[` or `{`, else CSV. A host listed twice is
 * refused (EINVENTORY, naming both rows): its zone lines would put two
 * capability RRs at one owner, and with --update one update would undo the other.
 */
export function parseInventory(text: string, source: string): InventoryRow[] {
  const rows = /^\s*[[{]/.test(text) ? parseJsonInventory(text, source) : parseCsvInventory(text, source);
  const seen = new Map<string, InventoryRow>();
  for (const row of rows) {
    if (row.name === '') continue; // reported with the row's other failures
    const key = (row.name.endsWith('.') ? row.name : `${row.name}.`).toLowerCase();
    const first = seen.get(key);
    if (first) bad(source, `${row.where}: host ${JSON.stringify(row.name)} is listed twice (first at ${first.where}); one row per host`);
    seen.set(key, row);
  }
  return rows;
}
