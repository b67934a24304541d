/**
 * Items by training popularity, for per-bucket evaluation (the paper's cold-start and popularity analyses):
 * an item's popularity is how often it occurs in the training prefixes (each user's sequence without its last
 * two items: `dataset.popularity`). Buckets are disjoint:
 *   new   0 training interactions (the paper's "new items": never seen in training)
 *   cold  1 .. coldBelow - 1 (with `new`, the paper's "cold items": fewer than 10 training interactions)
 *   warm  coldBelow or more
 * Not to be confused with warm-N (PrepareOptions.warm), which removes rare items from the data set.
 */
import { MorecError } from '../errors';
import { Sequences } from '../sequences';

export const ITEM_BUCKETS = ['new', 'cold', 'warm'] as const;
export type ItemBucket = (typeof ITEM_BUCKETS)[number];
/** The paper's threshold: cold items have fewer than 10 training interactions. */
export const COLD_BELOW = 10;
/** The code of padding (item 0) and of users without a target in `targetBuckets`. */
export const NO_BUCKET = 255;

export interface ItemBuckets {
  coldBelow: number;
  /** bucket[i] for item i (1..N): 0 new, 1 cold, 2 warm (indices into ITEM_BUCKETS); bucket[0] = NO_BUCKET. */
  bucket: Uint8Array;
  /** Items per bucket. */
  counts: Record<ItemBucket, number>;
}

export function bucketOfPopularity(popularity: number, coldBelow = COLD_BELOW): ItemBucket {
  return popularity === 0 ? 'new' : popularity < coldBelow ? 'cold' : 'warm';
}

/** Every item's bucket from its training popularity. */
export function itemBuckets(dataset: { popularity: Int32Array }, options: { coldBelow?: number } = {}): ItemBuckets {
  const coldBelow = options.coldBelow ?? COLD_BELOW;
  if (!Number.isInteger(coldBelow) || coldBelow < 1) throw new MorecError('EINVAL', `Expected a positive integer for coldBelow but received ${coldBelow}`);
  const pop = dataset.popularity;
  const bucket = new Uint8Array(pop.length);
  const counts: Record<ItemBucket, number> = { new: 0, cold: 0, warm: 0 };
  bucket[0] = NO_BUCKET;
  for (let i = 1; i < pop.length; i++) {
    const b = pop[i] === 0 ? 0 : pop[i] < coldBelow ? 1 : 2;
    bucket[i] = b;
    counts[ITEM_BUCKETS[b]]++;
  }
  return { coldBelow, bucket, counts };
}

/**
 * Each user's held-out target's bucket (test: last item, valid: second to last), NO_BUCKET for a user whose
 * sequence is too short to have one; with the per-user ranks of that split, metrics per bucket follow.
 */
export function targetBuckets(dataset: { sequences: Sequences; popularity: Int32Array }, split: 'valid' | 'test', buckets = itemBuckets(dataset)): Uint8Array {
  const { offsets, items } = dataset.sequences;
  const back = split === 'test' ? 1 : 2;
  const out = new Uint8Array(dataset.sequences.users).fill(NO_BUCKET);
  for (let u = 0; u < out.length; u++) if (offsets[u + 1] - offsets[u] >= back + 1) out[u] = buckets.bucket[items[offsets[u + 1] - back]];
  return out;
}
