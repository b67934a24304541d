/**
 * Users' chronological item sequences as CSR (offsets + items, items 1..numItems, 0 is padding), handed to
 * the native core once and reused by every epoch and evaluation.
 */
import { describe, invalid, MorecError, toMorecError } from './errors';
import { loadAddon, NativeSequences } from './native';
import { int32Array, positiveInt } from './validate';

export class Sequences {
  readonly offsets: Int32Array;
  readonly items: Int32Array;
  readonly numItems: number;
  /** @internal */
  readonly native: NativeSequences;

  constructor(offsets: Int32Array, items: Int32Array, numItems: number) {
    this.offsets = int32Array(offsets, 'offsets');
    this.items = int32Array(items, 'items');
    this.numItems = positiveInt(numItems, 'numItems');
    try {
      this.native = new (loadAddon().Sequences)(offsets, items, numItems);
    } catch (e) {
      throw toMorecError(e);
    }
  }

  /** From plain arrays, one per user, items in time order. */
  static fromArrays(seqs: number[][], numItems: number): Sequences {
    if (!Array.isArray(seqs)) throw invalid('an array of item arrays', 'sequences', seqs);
    const offsets = new Int32Array(seqs.length + 1);
    let total = 0;
    seqs.forEach((s, u) => {
      if (!Array.isArray(s)) throw invalid('an array of item indices', `sequences[${u}]`, s);
      total += s.length;
      offsets[u + 1] = total;
    });
    const items = new Int32Array(total);
    seqs.forEach((s, u) => {
      // Int32Array.set would wrap 1e12 to -727379968 and truncate 1.5: name the value as given instead
      const bad = s.findIndex((v) => !Number.isInteger(v) || v < 0 || v > 0x7fffffff);
      if (bad >= 0) throw new MorecError('EINVAL', `Expected item indices in 1..${numItems} but user ${u} has item ${describe(s[bad])} at position ${bad}`);
      items.set(s, offsets[u]);
    });
    return new Sequences(offsets, items, numItems);
  }

  get users(): number {
    return this.offsets.length - 1;
  }

  /**
   * Users whose held-out item of `split` (test: the last item, valid: the second to last) already occurs
   * earlier in their sequence: the users an evaluation with maskRepeatedTarget ranks as a miss (ascending).
   */
  repeatedTargetUsers(split: 'valid' | 'test'): Int32Array {
    if (split !== 'valid' && split !== 'test') throw invalid("'valid' or 'test'", 'split', split);
    try {
      return this.native.repeatedTargetUsers(split);
    } catch (e) {
      throw toMorecError(e);
    }
  }

  sequence(user: number): Int32Array {
    if (!Number.isInteger(user) || user < 0 || user >= this.users) throw new MorecError('EINVAL', `Expected a user index in 0..${this.users - 1} but received ${user}`);
    return this.items.subarray(this.offsets[user], this.offsets[user + 1]);
  }
}
