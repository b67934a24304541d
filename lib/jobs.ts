/** What the long native jobs (trainEpoch, evaluate, itemVectors) share on the TypeScript side: cancellation. */
import { invalid, MorecError, toMorecError } from './errors';

export interface JobOptions {
  /** Stops the job at its next batch; it then rejects with MorecError EABORT ("aborted at batch 12 of 40"). */
  signal?: AbortSignal;
}

/**
 * Runs a native job under an optional AbortSignal: an aborted signal rejects at once without starting the
 * job; an abort while it runs calls `cancel` (the model's native flag, read at every batch). The EABORT
 * rejection carries the signal's reason as its cause.
 */
export async function abortable<T>(signal: AbortSignal | undefined, cancel: () => void, job: () => Promise<T>): Promise<T> {
  if (signal === undefined) return job();
  if (!(signal instanceof AbortSignal)) throw invalid('an AbortSignal', 'signal', signal);
  if (signal.aborted) throw new MorecError('EABORT', 'aborted before it started', { cause: signal.reason });
  signal.addEventListener('abort', cancel, { once: true });
  try {
    return await job();
  } catch (e) {
    const err = toMorecError(e);
    throw err.code === 'EABORT' ? new MorecError('EABORT', err.message, { cause: signal.reason }) : err;
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}
