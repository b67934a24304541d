/**
 * Ranking metrics from 0-based ranks of held-out items (rank = number of unmasked items scored strictly
 * higher). Users with rank < 0 were not evaluated and are left out of the averages.
 * HR@K = share of users with rank < K; NDCG@K = mean of 1 / log2(rank + 2) over users with rank < K (0 else).
 */
import { invalid } from './errors';

export interface Metrics {
  [name: string]: number;
  users: number;
}

/** `HR@10`, `NDCG@10` for full ranking; `HR@10(sampled100)` style names for the sampled protocol. */
export function metrics(ranks: Int32Array | number[], ks: number | number[] = 10, suffix = ''): Metrics {
  const list = Array.isArray(ks) ? ks : [ks];
  for (const k of list) if (!Number.isInteger(k) || k < 1) throw invalid('a positive integer', 'K', k);
  const hr = new Array<number>(list.length).fill(0);
  const ndcg = new Array<number>(list.length).fill(0);
  let users = 0;
  for (let i = 0; i < ranks.length; i++) {
    const r = ranks[i];
    if (r < 0) continue;
    users++;
    for (let j = 0; j < list.length; j++) {
      if (r < list[j]) {
        hr[j] += 1;
        ndcg[j] += 1 / Math.log2(r + 2);
      }
    }
  }
  const out: Metrics = { users };
  list.forEach((k, j) => {
    out[`HR@${k}${suffix}`] = users ? hr[j] / users : 0;
    out[`NDCG@${k}${suffix}`] = users ? ndcg[j] / users : 0;
  });
  return out;
}
