// Shared by the benchmarks: what a set of rounds' figures says.
// Files starting with "_" are helpers, not benchmarks (scripts/bench.mjs skips them).

/** The median, or undefined for no values. */
export function median(xs: readonly number[] | undefined): number | undefined {
  if (!xs || xs.length === 0) return undefined;
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/**
 * A confidence interval for the median of the rounds' values that assumes nothing about their
 * distribution: the k-th smallest and the k-th largest, for the largest k whose interval holds the
 * true median with at least 95 % probability (each round's value falls below it with probability ½,
 * so the count below it is Binomial(n, ½)). Under 6 rounds no k reaches 95 %: then the whole range,
 * with the confidence it has (94 % for 5 rounds).
 */
export function medianInterval(xs: readonly number[]): { lo: number; hi: number; confidence: number } | undefined {
  const n = xs.length;
  if (n === 0) return undefined;
  const v = [...xs].sort((a, b) => a - b);
  // below[j] = P(Binomial(n, ½) ≤ j)
  const below: number[] = [];
  let c = 1, sum = 0;
  for (let j = 0; j <= n; j++) {
    sum += c / 2 ** n;
    below.push(sum);
    c = (c * (n - j)) / (j + 1);
  }
  const confidence = (k: number): number => 1 - 2 * below[k - 1]!; // of [v(k), v(n+1−k)], 1-based
  let k = 1;
  while (k + 1 <= (n + 1) / 2 && confidence(k + 1) >= 0.95) k++;
  return { lo: v[k - 1]!, hi: v[n - k]!, confidence: confidence(k) };
}
