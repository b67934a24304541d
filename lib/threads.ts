/**
 * The process-wide thread budget. Every long native job (training epoch, evaluation, item table) of every
 * model, worker threads included, runs on morec's one job thread, one job at a time and in call order, with
 * this many intra-op threads; a model's `threads` config caps its own jobs further. Concurrent calls queue
 * instead of oversubscribing the cores, and never occupy libuv's thread pool (fs, dns, zlib).
 */
import * as os from 'node:os';
import { loadAddon } from './native';
import { positiveInt } from './validate';

const warned = new Set<number>();

/** More threads than cores only oversubscribe them: clamps to the cores, warning once per requested count. */
function clampToCores(requested: number, what: string): number {
  const cores = os.availableParallelism();
  if (requested <= cores) return requested;
  if (!warned.has(requested)) {
    warned.add(requested);
    process.emitWarning(`${what} ${requested} exceeds the ${cores} available cores; using ${cores}`, { code: 'MOREC_THREADS' });
  }
  return cores;
}

/** Sets the budget every model's jobs share (default: all cores); returns the count now in force. */
export function setThreads(threads: number): number {
  return loadAddon().setThreads(clampToCores(positiveInt(threads, 'threads'), 'setThreads'));
}

/** The budget every model's jobs share now. */
export function getThreads(): number {
  return loadAddon().getThreads().threads;
}

/** @internal A model config's `threads`: default (undefined or 0) all cores, never more than the cores. */
export function configThreads(requested: number | undefined): number {
  return requested ? clampToCores(requested, 'threads') : os.availableParallelism();
}
