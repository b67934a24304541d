/**
 * Training to early stop: epochs of native training, a full-ranking validation pass after each, the best
 * weights (by validation HR@10 unless told otherwise) kept and restored, then the test pass.
 */
import { MorecError } from '../errors';
import { metrics, Metrics } from '../metrics';
import { EpochOptions, EpochResult, Model } from '../model';
import { Sequences } from '../sequences';
import { nonNegativeInt, positiveInt } from '../validate';

export interface FitOptions extends Omit<EpochOptions, 'epoch'> {
  maxEpochs?: number;
  /** Stop after this many validation passes without improvement. */
  patience?: number;
  /** Validation metric to select on, e.g. 'HR@10' or 'NDCG@10'. */
  monitor?: string;
  /** K values reported. */
  ks?: number[];
  /** Called after each epoch's validation. Return false to stop. */
  onEpoch?: (e: EpochReport) => void | boolean;
  onBatch?: (epoch: number, done: number, total: number, loss: number) => void;
  /** Called when a new best is found (e.g. to save a checkpoint). */
  onBest?: (e: EpochReport) => void;
}

export interface EpochReport {
  epoch: number;
  loss: number;
  trainSeconds: number;
  evalSeconds: number;
  valid: Metrics;
  best: boolean;
  train: EpochResult;
}

export interface FitResult {
  bestEpoch: number;
  epochs: number;
  valid: Metrics;
  test: Metrics;
  history: EpochReport[];
  seconds: number;
  testRanks: Int32Array;
}

export async function fit(model: Model, seqs: Sequences, options: FitOptions = {}): Promise<FitResult> {
  const maxEpochs = positiveInt(options.maxEpochs ?? 100, 'maxEpochs');
  const patience = nonNegativeInt(options.patience ?? 5, 'patience');
  const ks = options.ks ?? [10];
  const monitor = options.monitor ?? 'HR@10';
  const { maxEpochs: _m, patience: _p, monitor: _mo, ks: _k, onEpoch, onBatch, onBest, ...epochOptions } = options;
  const started = process.hrtime.bigint();
  const history: EpochReport[] = [];
  // The best epoch's weights are snapshotted natively (a copy in the core, not through the JS heap).
  let best: { epoch: number; value: number; valid: Metrics } | undefined;
  let sinceBest = 0;
  for (let epoch = 0; epoch < maxEpochs; epoch++) {
    const train = await model.trainEpoch(seqs, { ...epochOptions, epoch }, onBatch ? (d, t, l) => onBatch(epoch, d, t, l) : undefined);
    const t0 = process.hrtime.bigint();
    const valid = metrics(await model.evaluate(seqs, { split: 'valid' }), ks);
    const evalSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const value = valid[monitor];
    if (value === undefined) throw new MorecError('EINVAL', `Expected monitor to be one of ${Object.keys(valid).join(', ')} but received '${monitor}'`);
    const isBest = !best || value > best.value;
    const report: EpochReport = { epoch, loss: train.loss, trainSeconds: train.seconds, evalSeconds, valid, best: isBest, train };
    history.push(report);
    if (isBest) {
      best = { epoch, value, valid };
      model.snapshotWeights();
      sinceBest = 0;
      onBest?.(report);
    } else {
      sinceBest++;
    }
    const go = onEpoch?.(report);
    if (go === false || sinceBest >= Math.max(1, patience)) break;
  }
  if (!best) throw new MorecError('EINVAL', 'no epoch was trained');
  model.restoreWeights();
  const testRanks = await model.evaluate(seqs, { split: 'test' });
  return {
    bestEpoch: best.epoch,
    epochs: history.length,
    valid: best.valid,
    test: metrics(testRanks, ks),
    history,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    testRanks,
  };
}
