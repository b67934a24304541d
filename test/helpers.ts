/** Small deterministic helpers shared by the test suites. */
import * as assert from 'node:assert/strict';
import { ItemStore, MorecError, Sequences } from '../lib';
import { seededRandom } from '../lib/util/random';

export { seededRandom as rng } from '../lib/util/random';

/**
 * Planted structure: items form one long chain 1 -> 2 -> ... -> N -> 1; each user starts at a random item
 * and walks forward (occasionally skipping one). A sequential model can learn "next = current + 1"; item
 * popularity is flat, so a popularity ranking is near chance.
 */
export function chainWorld(users: number, numItems: number, seed: number): Sequences {
  const r = seededRandom(seed);
  const seqs: number[][] = [];
  for (let u = 0; u < users; u++) {
    const len = 6 + Math.floor(r() * 10);
    let item = 1 + Math.floor(r() * numItems);
    const s: number[] = [];
    for (let i = 0; i < len; i++) {
      s.push(item);
      item = (item % numItems) + 1;
      if (r() < 0.1) item = (item % numItems) + 1;
    }
    seqs.push(s);
  }
  return Sequences.fromArrays(seqs, numItems);
}

/** For assert.throws / assert.rejects: a MorecError with this code whose message matches. */
export function isMorec(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MorecError, `expected a MorecError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/** An item store of reference images (item i = image i - 1, CHW bytes); row 0, the padding item, is grey. */
export function pixelStore(pixels: ArrayLike<number>, n: number, size: number): ItemStore {
  const row = 3 * size * size;
  const bytes = new Uint8Array((n + 1) * row).fill(128);
  bytes.set(Uint8Array.from(pixels), row);
  return ItemStore.fromPixels({ numItems: n, height: size, width: size, pixels: bytes });
}

/** Random images (seeded) for training tests. */
export function randomStore(n: number, size: number, seed: number): ItemStore {
  const r = seededRandom(seed);
  const bytes = new Uint8Array((n + 1) * 3 * size * size);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
  return ItemStore.fromPixels({ numItems: n, height: size, width: size, pixels: bytes });
}
