/**
 * Metrics per item bucket, as the paper's Table 9: users are grouped by how often their held-out target item
 * occurs in the training prefixes (each sequence without its last two items) — new (0), cold (1-9), warm (>= 10).
 */
import { Metrics, metrics } from './metrics';
import { Sequences } from './sequences';

export const COLD_BELOW = 10;
export type Bucket = 'new' | 'cold' | 'warm';
export type BucketMetrics = Record<Bucket, Metrics>;

export function bucketOf(popularity: number): Bucket {
  return popularity === 0 ? 'new' : popularity < COLD_BELOW ? 'cold' : 'warm';
}

/** HR/NDCG@ks of each bucket from per-user ranks of a split (ranks[u] < 0: user not evaluated). */
export function bucketMetrics(data: { sequences: Sequences; popularity: Int32Array }, ranks: Int32Array, split: 'valid' | 'test', ks: number[] = [10]): BucketMetrics {
  const { offsets, items } = data.sequences;
  const groups: Record<Bucket, number[]> = { new: [], cold: [], warm: [] };
  for (let u = 0; u < ranks.length; u++) {
    if (ranks[u] < 0) continue;
    const target = items[offsets[u + 1] - (split === 'test' ? 1 : 2)];
    groups[bucketOf(data.popularity[target])].push(ranks[u]);
  }
  return { new: metrics(groups.new, ks), cold: metrics(groups.cold, ks), warm: metrics(groups.warm, ks) };
}
