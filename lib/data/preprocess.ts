/**
 * The study's preprocessing of chronological sequences: drop users with fewer than minSeqLen interactions,
 * optionally keep only warm-N items, keep each user's last maxLen + 3 items (input window + validation + test,
 * plus one), drop items no longer used and re-index the rest 1..N (0 = padding), keeping their first-appearance
 * order.
 *
 * Warm-N (the paper's Table 3, N = 20, 50, 200): after the users below minSeqLen are dropped, items with fewer
 * than N interactions (counted over the kept users' whole sequences, before the L + 3 window) are removed from
 * every sequence, users who fall below minSeqLen are dropped, and the two steps repeat until nothing changes
 * (a fixpoint: every remaining item has at least N interactions among the remaining users, every user at least
 * minSeqLen). The official code has no such filter (its warm data sets were prepared outside it), so this is
 * our reading of "items with fewer than N interactions are removed"; the rounds it took are reported. The L + 3
 * window is applied after the fixpoint, so an item may have fewer than N interactions inside the windows.
 */
import { MorecError } from '../errors';
import { Sequences } from '../sequences';
import { nonNegativeInt, positiveInt } from '../validate';

export interface PreprocessOptions {
  minSeqLen?: number;
  /** Model window L; users keep their last L + 3 items. 0 keeps everything. */
  maxLen?: number;
  /** Warm-N: drop items with fewer than N interactions, repeated with the minSeqLen rule to a fixpoint. 0 = off. */
  warm?: number;
  /** Items (input indices) removed from every sequence before anything else, e.g. items without a usable image. */
  removeItems?: ArrayLike<number>;
}

/** What preprocessing dropped; every input interaction is in exactly one of these or in the output. */
export interface PreprocessStats {
  /** Interactions of dropped users (those not already removed by warm-N). */
  interactionsOfDroppedUsers: number;
  /** Users below minSeqLen only after warm-N removed some of their items. */
  usersDroppedByWarm: number;
  /** Items removed for having fewer than N interactions, and their interactions (among users kept at that round). */
  warmItemsDropped: number;
  warmInteractionsDropped: number;
  /** Rounds of warm-N that removed something (0 when off or nothing was below N). */
  warmRounds: number;
  /** Interactions of kept users before their last maxLen + 3. */
  interactionsBeyondWindow: number;
  /** removeItems: the interactions they had, and the users then below minSeqLen (their interactions are in interactionsOfDroppedUsers). */
  removedItemInteractions: number;
  usersDroppedByRemoval: number;
}

export interface Preprocessed {
  sequences: Sequences;
  /** keptUsers[u] = index of user u in the input */
  keptUsers: Int32Array;
  /** itemMap[newIndex - 1] = old item index */
  itemMap: Int32Array;
  stats: PreprocessStats;
}

export function preprocess(input: Sequences, options: PreprocessOptions = {}): Preprocessed {
  const minSeqLen = positiveInt(options.minSeqLen ?? 5, 'minSeqLen');
  const maxLen = nonNegativeInt(options.maxLen ?? 0, 'maxLen');
  const warm = nonNegativeInt(options.warm ?? 0, 'warm');
  const keep = maxLen > 0 ? maxLen + 3 : Infinity;
  const { offsets: inOff, items: inItems } = input;
  const users = input.users;
  const alive = new Uint8Array(users);
  const length = new Int32Array(users);
  const removed = new Uint8Array(input.numItems + 1);
  const stats: PreprocessStats = { interactionsOfDroppedUsers: 0, usersDroppedByWarm: 0, warmItemsDropped: 0, warmInteractionsDropped: 0, warmRounds: 0, interactionsBeyondWindow: 0, removedItemInteractions: 0, usersDroppedByRemoval: 0 };
  for (const it of Array.from(options.removeItems ?? [])) {
    if (!Number.isInteger(it) || it < 1 || it > input.numItems) throw new MorecError('EINVAL', `Expected item indices in 1..${input.numItems} for removeItems but received ${it}`);
    removed[it] = 1;
  }
  for (let u = 0; u < users; u++) {
    let n = 0;
    for (let i = inOff[u]; i < inOff[u + 1]; i++) if (!removed[inItems[i]]) n++;
    length[u] = n;
    stats.removedItemInteractions += inOff[u + 1] - inOff[u] - n;
    if (n >= minSeqLen) alive[u] = 1;
    else {
      stats.interactionsOfDroppedUsers += n;
      if (inOff[u + 1] - inOff[u] >= minSeqLen) stats.usersDroppedByRemoval++;
    }
  }
  if (warm > 1) {
    const counts = new Int32Array(input.numItems + 1);
    for (;;) {
      counts.fill(0);
      for (let u = 0; u < users; u++) if (alive[u]) for (let i = inOff[u]; i < inOff[u + 1]; i++) counts[inItems[i]]++;
      let changed = false;
      for (let it = 1; it <= input.numItems; it++) {
        if (removed[it] || counts[it] === 0 || counts[it] >= warm) continue;
        removed[it] = 1;
        changed = true;
        stats.warmItemsDropped++;
        stats.warmInteractionsDropped += counts[it];
      }
      if (!changed) break;
      stats.warmRounds++;
      for (let u = 0; u < users; u++) {
        if (!alive[u]) continue;
        let n = 0;
        for (let i = inOff[u]; i < inOff[u + 1]; i++) if (!removed[inItems[i]]) n++;
        length[u] = n;
        if (n < minSeqLen) {
          alive[u] = 0;
          stats.usersDroppedByWarm++;
          stats.interactionsOfDroppedUsers += n;
        }
      }
    }
  }
  const keptUsers: number[] = [];
  const offsets: number[] = [0];
  const oldItems: number[] = [];
  for (let u = 0; u < users; u++) {
    if (!alive[u]) continue;
    let skip = Math.max(0, length[u] - keep);
    stats.interactionsBeyondWindow += skip;
    for (let i = inOff[u]; i < inOff[u + 1]; i++) {
      const it = inItems[i];
      if (removed[it]) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      oldItems.push(it);
    }
    offsets.push(oldItems.length);
    keptUsers.push(u);
  }
  if (keptUsers.length === 0) {
    const why = warm > 1 ? `minSeqLen ${minSeqLen}, warm-${warm}: ${stats.warmItemsDropped} items with fewer than ${warm} interactions removed in ${stats.warmRounds} rounds` : `minSeqLen ${minSeqLen}`;
    throw new MorecError('EINVAL', `no user has at least ${minSeqLen} interactions: the data set is empty after filtering (${why})`);
  }
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
    stats,
  };
}
