/**
 * The popularity baseline under the same protocol as the models: items ranked by how often they occur in
 * all users' training prefixes, history masked, rank = items strictly more popular than the target.
 */
import { Sequences } from './sequences';

export function popularityRanks(seqs: Sequences, split: 'valid' | 'test' = 'test'): Int32Array {
  const holdOut = split === 'valid' ? 2 : 1;
  const counts = new Float64Array(seqs.numItems + 1);
  for (let u = 0; u < seqs.users; u++) {
    const s = seqs.sequence(u);
    for (let i = 0; i < s.length - 2; i++) counts[s[i]]++;
  }
  // Sorted popularity lets each rank be a binary search plus a correction for masked items.
  const sorted = Float64Array.from(counts.subarray(1)).sort();
  const ranks = new Int32Array(seqs.users).fill(-1);
  for (let u = 0; u < seqs.users; u++) {
    const s = seqs.sequence(u);
    const inputLen = s.length - holdOut;
    if (inputLen < 1) continue;
    const target = s[inputLen];
    const t = counts[target];
    let lo = 0, hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    let rank = sorted.length - lo;
    const masked = new Set<number>();
    for (let i = 0; i < inputLen; i++) if (s[i] !== target) masked.add(s[i]);
    for (const m of masked) if (counts[m] > t) rank--;
    ranks[u] = rank;
  }
  return ranks;
}
