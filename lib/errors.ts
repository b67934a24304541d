/** The one error class of morec: every failure, native or TypeScript, carries a stable `code`. */
export type MorecErrorCode =
  | 'EINVAL' // bad argument or input
  | 'EUSAGE' // bad command-line usage (the CLI exits with status 2)
  | 'EEXIST' // a run or study folder already holds another run (exit status 2)
  | 'ETORCH' // libtorch raised an error
  | 'ENOMEM'
  | 'EBUSY' // the model is already running an epoch or an evaluation
  | 'ESAMPLE' // no negative can be drawn
  | 'ENONFINITE' // the loss diverged
  | 'ENODEVICE' // the requested device is not available
  | 'ENOADDON' // the native addon could not be loaded
  | 'EFORMAT' // a file is malformed
  | 'EMISMATCH' // a checkpoint does not fit the model (missing, unexpected or mis-shaped tensors)
  | 'ENOENT' // a file does not exist
  | 'EIO' // a file could not be read
  | 'EABORT' // stopped by an AbortSignal (or SIGINT/SIGTERM in the CLI)
  | 'EUNKNOWN' // an item or user id the model does not know
  | 'ECLOSED' // the recommender (or service) was closed
  | 'EDIST' // data-parallel: the process group failed (rendezvous, a rank that stopped, a timeout)
  | 'ENATIVE'; // any other native failure

export class MorecError extends Error {
  readonly code: MorecErrorCode;
  constructor(code: MorecErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MorecError';
    this.code = code;
  }
}

/** Awaits a native call's Promise, turning whatever it rejects with into a MorecError. */
export async function awaitNative<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw toMorecError(e);
  }
}

/** Converts whatever a native call threw into a MorecError (keeping the JS stack of the caller). */
export function toMorecError(err: unknown): MorecError {
  if (err instanceof MorecError) return err;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? (e.code as MorecErrorCode) : 'ENATIVE';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return new MorecError(code, message, { cause: err });
}

/** "Expected a positive integer for d but received -3" */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  if (Array.isArray(value)) return 'an array';
  return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
}

export function invalid(expected: string, name: string, value: unknown): MorecError {
  return new MorecError('EINVAL', `Expected ${expected} for ${name} but received ${describe(value)}`);
}

/**
 * Wraps any failure as a MorecError: errno failures of the file system keep their meaning (ENOENT, or EIO
 * with the errno and path: EACCES, ENOSPC, EEXIST, ...); anything else is ENATIVE with its message.
 */
export function asMorecError(err: unknown): MorecError {
  if (err instanceof MorecError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.syscall === 'string') {
    const where = e.path ? `${e.path}: ` : '';
    return new MorecError(e.code === 'ENOENT' ? 'ENOENT' : 'EIO', `${where}${e.syscall} failed (${e.code})`, { cause: err });
  }
  return toMorecError(err);
}

/** Prints a failure as "CODE: message" on stderr; returns the exit status: 2 for bad usage, 130/143 for SIGINT/SIGTERM, else 1. */
export function reportFailure(err: unknown): number {
  const e = asMorecError(err);
  console.error(`${e.code}: ${e.message}`);
  if (e.code === 'EUSAGE' || e.code === 'EEXIST') return 2;
  if (e.code === 'EABORT' && /^SIG(INT|TERM)/.test(e.message)) return e.message.startsWith('SIGINT') ? 130 : 143;
  return 1;
}
