/**
 * The kernel encapsulation's maps of a lab host's daemon, read with bpftool (the pins are in the
 * daemon's own mount namespace: the maps are found through the programs on link P). Not a
 * test file itself.
 */
import assert from 'node:assert/strict';
import { LAB_IF, nsExec, sh, type Lab } from '../../lab/topology.ts';

export interface LabMap { id: number; maxEntries: number; valueBytes: number }

/** Host `h`'s map `name` of the tc programs. */
export function mapOf(lab: Lab, name: string, h: 'a' | 'b' = 'a'): LabMap {
  const ids = new Set<number>();
  for (const dir of ['egress', 'ingress']) {
    const shown = nsExec(h === 'a' ? lab.a : lab.b, ['tc', 'filter', 'show', 'dev', LAB_IF.P, dir]).stdout;
    const prog = new RegExp(`\\bid (\\d+) name shim6_${dir}\\b`).exec(shown)?.[1];
    assert.ok(prog !== undefined, `${h.toUpperCase()}'s ${dir} program on ${LAB_IF.P}: ${shown}`);
    for (const id of (JSON.parse(sh(['bpftool', 'prog', 'show', 'id', prog, '-j']).stdout) as { map_ids: number[] }).map_ids) ids.add(id);
  }
  for (const id of ids) {
    const m = JSON.parse(sh(['bpftool', 'map', 'show', 'id', String(id), '-j']).stdout) as { name: string; max_entries: number; bytes_value: number };
    if (m.name === name) return { id, maxEntries: m.max_entries, valueBytes: m.bytes_value };
  }
  throw new Error(`no map ${name} among ${h.toUpperCase()}'s programs' maps ${[...ids].join(',')}`);
}

/** Every entry of a map: key and value octets. */
export function dumpMap(m: LabMap): Array<{ key: Uint8Array; value: Uint8Array }> {
  const octets = (xs: string[]): Uint8Array => Uint8Array.from(xs.map((x) => parseInt(x, 16)));
  const entries = JSON.parse(sh(['bpftool', 'map', 'dump', 'id', String(m.id), '-j']).stdout) as Array<{ key: string[]; value: string[] }>;
  return entries.map((e) => ({ key: octets(e.key), value: octets(e.value) }));
}

/** Octets as bpftool's `hex` arguments. */
export const hexArgs = (b: ArrayLike<number>): string[] => Array.from(b, (x) => x.toString(16).padStart(2, '0'));
