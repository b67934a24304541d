/** Argument checks with uniform messages, run before anything reaches native code. */
import { invalid, MorecError } from './errors';

export function positiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalid('a positive integer', name, value);
  return value;
}

export function nonNegativeInt(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw invalid('a non-negative integer', name, value);
  return value;
}

export function numberIn(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
    throw invalid(`a number in [${min}, ${max}]`, name, value);
  return value;
}

export function oneOf<T extends string>(value: unknown, name: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !choices.includes(value as T)) throw invalid(`one of ${choices.map((c) => `'${c}'`).join(' | ')}`, name, value);
  return value as T;
}

export function int32Array(value: unknown, name: string): Int32Array {
  if (!(value instanceof Int32Array)) throw invalid('an Int32Array', name, value);
  return value;
}

/** " (did you mean lr?)" for a key within edit distance 2 of a known one, else "". */
export function didYouMean(key: string, known: string[]): string {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
    return d[a.length][b.length];
  };
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const alias: Record<string, string> = { learningrate: 'lr', encoderlearningrate: 'encoderLr', epochs: 'maxEpochs', wd: 'weightDecay' };
  const a = alias[norm(key)];
  if (a && known.includes(a)) return ` (did you mean ${a}?)`;
  const best = known.map((k) => ({ k, d: dist(norm(key), norm(k)) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= 2 ? ` (did you mean ${best.k}?)` : '';
}

/** Refuses keys of an options object that are not in `known`, with a suggestion where one is close. */
export function knownKeys(o: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(o))
    if (!known.includes(key) && (o as Record<string, unknown>)[key] !== undefined)
      throw new MorecError('EINVAL', `Unknown ${what} option ${key}${didYouMean(key, [...known])} (expected one of ${known.join(', ')})`);
}
