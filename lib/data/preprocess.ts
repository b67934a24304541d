/**
 * The study's preprocessing of chronological sequences: drop users with fewer than minSeqLen interactions,
 * keep each user's last maxLen + 3 items (input window + validation + test, plus one), drop items no longer
 * used and re-index the rest 1..N (0 = padding), keeping their first-appearance order.
 */
import { MorecError } from '../errors';
import { Sequences } from '../sequences';
import { nonNegativeInt, positiveInt } from '../validate';

export interface PreprocessOptions {
  minSeqLen?: number;
  /** Model window L; users keep their last L + 3 items. 0 keeps everything. */
  maxLen?: number;
}

export interface Preprocessed {
  sequences: Sequences;
  /** keptUsers[u] = index of user u in the input */
  keptUsers: Int32Array;
  /** itemMap[newIndex - 1] = old item index */
  itemMap: Int32Array;
}

export function preprocess(input: Sequences, options: PreprocessOptions = {}): Preprocessed {
  const minSeqLen = positiveInt(options.minSeqLen ?? 5, 'minSeqLen');
  const maxLen = nonNegativeInt(options.maxLen ?? 0, 'maxLen');
  const keep = maxLen > 0 ? maxLen + 3 : Infinity;
  const keptUsers: number[] = [];
  const offsets: number[] = [0];
  const oldItems: number[] = [];
  for (let u = 0; u < input.users; u++) {
    const s = input.sequence(u);
    if (s.length < minSeqLen) continue;
    const tail = s.length > keep ? s.subarray(s.length - keep) : s;
    for (const it of tail) oldItems.push(it);
    offsets.push(oldItems.length);
    keptUsers.push(u);
  }
  if (keptUsers.length === 0)
    throw new MorecError('EINVAL', `no user has at least ${minSeqLen} interactions: the data set is empty after filtering (minSeqLen ${minSeqLen})`);
  const remap = new Int32Array(input.numItems + 1);
  const itemMap: number[] = [];
  const items = new Int32Array(oldItems.length);
  for (let i = 0; i < oldItems.length; i++) {
    const old = oldItems[i];
    if (remap[old] === 0) {
      itemMap.push(old);
      remap[old] = itemMap.length;
    }
    items[i] = remap[old];
  }
  return {
    sequences: new Sequences(Int32Array.from(offsets), items, itemMap.length),
    keptUsers: Int32Array.from(keptUsers),
    itemMap: Int32Array.from(itemMap),
  };
}
