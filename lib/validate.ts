/** Argument checks with uniform messages, run before anything reaches native code. */
import { invalid } from './errors';

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
