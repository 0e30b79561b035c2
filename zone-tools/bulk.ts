/**
 * `zone bulk`: `record` (or `update`) for every host of an inventory, with a
 * progress bar on a terminal and a summary of failures at the end. One bad host
 * never stops the others.
 *
 * Owns: the loop, the progress bar, the failure summary. Must not know: how an
 * inventory is spelled (inventory.ts) or how a record is built (record-input.ts).
 */
import { readBounded } from '../shim/read-bounded.ts';
import path from 'node:path';
import { buildHostRecord, INVENTORY_COLUMNS } from './record-input.ts';
import { hostZoneLines, type HostRecord } from './zone-lines.ts';
import { parseHbaParams, type HbaParamsFile } from '../shim/wire/hba-params.ts';
import type { InventoryRow } from './inventory.ts';

export interface BulkFailure {
  where: string;
  name: string;
  why: string;
}

export interface BulkDefaults {
  ttl?: string | undefined;
  txt?: boolean | undefined;
  aaaa?: 'all' | 'ulid' | undefined;
  rrType?: number | undefined;
  /** Directory that relative `hba` paths are read from. */
  baseDir: string;
}

/** Reports progress; the CLI draws a bar with it. */
export type Progress = (done: number, total: number) => void;

/** Build every row's HostRecord; failures are collected, not thrown. */
export function buildAll(rows: readonly InventoryRow[], d: BulkDefaults, progress?: Progress): { hosts: HostRecord[]; failures: BulkFailure[] } {
  const hosts: HostRecord[] = [];
  const failures: BulkFailure[] = [];
  const hbaCache = new Map<string, HbaParamsFile>();
  const step = Math.max(1, Math.floor(rows.length / 200));
  rows.forEach((row, i) => {
    try {
      let hba: HbaParamsFile | undefined;
      if (row.hba !== undefined) {
        const p = path.resolve(d.baseDir, row.hba);
        hba = hbaCache.get(p) ?? parseHbaParams(readBounded(p, 'hba', 'params'), p);
        hbaCache.set(p, hba);
      }
      hosts.push(buildHostRecord({
        name: row.name, ulid: row.ulid, locators: row.locators, ttl: row.ttl ?? d.ttl, port: row.port,
        txt: row.txt ?? d.txt, hba, aaaa: d.aaaa, rrType: d.rrType, fields: INVENTORY_COLUMNS,
      }));
    } catch (e) {
      failures.push({ where: row.where, name: row.name, why: (e as Error).message });
    }
    if (progress && (i % step === 0 || i === rows.length - 1)) progress(i + 1, rows.length);
  });
  return { hosts, failures };
}

/** Zone-file text for many hosts (one blank line between hosts). */
export function bulkZoneText(hosts: readonly HostRecord[]): string {
  const parts: string[] = [];
  for (const h of hosts) parts.push(hostZoneLines(h).join('\n'));
  return parts.length === 0 ? '' : parts.join('\n\n') + '\n';
}

/** Run `fn` over `items` with at most `limit` in flight; failures collected per item. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>, onDone?: (n: number) => void): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A one-line progress bar for a terminal on `out` (stderr). */
export function progressBar(out: NodeJS.WriteStream, label: string): { update: Progress; finish: () => void } {
  let last = '';
  return {
    update(done, total) {
      const width = 30;
      const filled = total === 0 ? width : Math.round((done / total) * width);
      const line = `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
      if (line !== last) { out.write(line); last = line; }
    },
    finish() { if (last !== '') out.write('\n'); },
  };
}

/** The failure summary, at most `max` lines of detail. */
export function failureSummary(total: number, failures: readonly BulkFailure[], max = 20): string {
  if (failures.length === 0) return `${total} hosts, no failures`;
  const lines = [`${total} hosts, ${failures.length} failed:`];
  for (const f of failures.slice(0, max)) lines.push(`  ${f.where} ${f.name || '(no name)'}: ${f.why}`);
  if (failures.length > max) lines.push(`  … and ${failures.length - max} more`);
  return lines.join('\n');
}
