/**
 * The benches' one percentile.
 *
 * @module
 */

/**
 * The `p`-th percentile (0 < p <= 100) of `xs` by the nearest-rank method:
 * the smallest value with at least p % of the values at or below it. With
 * 100 values, p99 is the 99th smallest (not the largest); NaN when empty.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile: p must be in (0, 100], got ${p}`);
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1] ?? NaN;
}
