/**
 * Metrics per target-item bucket, as the paper's Table 9: each user's ranks are grouped by the bucket of the
 * held-out item (lib/data/buckets.ts: new = 0 training interactions, cold = 1-9, warm = 10 or more).
 */
import { ITEM_BUCKETS, ItemBucket, targetBuckets } from './data/buckets';
import { Metrics, metrics } from './metrics';
import { Sequences } from './sequences';

export type BucketMetrics = Record<ItemBucket, Metrics>;

/** HR/NDCG@ks of each bucket from per-user ranks of a split (ranks[u] < 0: user not evaluated). */
export function bucketMetrics(data: { sequences: Sequences; popularity: Int32Array }, ranks: Int32Array, split: 'valid' | 'test', ks: number[] = [10]): BucketMetrics {
  const bucket = targetBuckets(data, split);
  const groups: number[][] = ITEM_BUCKETS.map(() => []);
  for (let u = 0; u < ranks.length; u++) if (ranks[u] >= 0 && bucket[u] < groups.length) groups[bucket[u]].push(ranks[u]);
  return Object.fromEntries(ITEM_BUCKETS.map((b, i) => [b, metrics(groups[i], ks)])) as BucketMetrics;
}
