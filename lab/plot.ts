/**
 * Throughput over time as a self-contained SVG (no library): one line of
 * Mbit/s per 100 ms sample, vertical markers for events (the failure, the
 * re-homing), axes with ticks. Owns only the drawing.
 */

export interface PlotSeries {
  label: string;
  /** Seconds since the start, and Mbit/s. */
  points: Array<[number, number]>;
  color?: string;
}

export interface PlotMarker {
  t: number;
  label: string;
  color?: string;
}

const W = 800;
const H = 360;
const M = { l: 60, r: 20, t: 30, b: 45 };

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}

/** A "nice" tick step for a range (1, 2, 5 × 10^k). */
function step(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** Draw the series and markers; returns the SVG text. */
export function throughputSvg(title: string, series: PlotSeries[], markers: PlotMarker[] = []): string {
  const all = series.flatMap((s) => s.points);
  const tMax = Math.max(1, ...all.map((p) => p[0]), ...markers.map((m) => m.t));
  const yMax = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const x = (t: number): number => M.l + (t / tMax) * (W - M.l - M.r);
  const y = (v: number): number => H - M.b - (v / yMax) * (H - M.t - M.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  const xs = step(tMax, 10);
  for (let t = 0; t <= tMax + 1e-9; t += xs) {
    out.push(`<line x1="${x(t)}" y1="${H - M.b}" x2="${x(t)}" y2="${M.t}" stroke="#eee"/>`,
      `<text x="${x(t)}" y="${H - M.b + 16}" text-anchor="middle">${+t.toFixed(2)}</text>`);
  }
  const ys = step(yMax, 6);
  for (let v = 0; v <= yMax; v += ys) {
    out.push(`<line x1="${M.l}" y1="${y(v)}" x2="${W - M.r}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${M.l - 6}" y="${y(v) + 4}" text-anchor="end">${+v.toFixed(1)}</text>`);
  }
  out.push(`<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/>`,
    `<line x1="${M.l}" y1="${H - M.b}" x2="${M.l}" y2="${M.t}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">time (s)</text>`,
    `<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">Mbit/s per 100 ms</text>`);
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  series.forEach((s, i) => {
    const color = s.color ?? palette[i % palette.length];
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`,
      `<text x="${W - M.r - 4}" y="${M.t + 14 + 14 * i}" text-anchor="end" fill="${color}">${esc(s.label)}</text>`);
  });
  markers.forEach((m, i) => {
    const color = m.color ?? '#ff7f0e';
    out.push(`<line x1="${x(m.t)}" y1="${M.t}" x2="${x(m.t)}" y2="${H - M.b}" stroke="${color}" stroke-dasharray="4 3"/>`,
      `<text x="${x(m.t) + 4}" y="${M.t + 12 + 14 * i}" fill="${color}">${esc(m.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
