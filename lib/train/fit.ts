/**
 * Training to early stop: epochs of native training, a full-ranking validation pass after each, the best
 * weights (by validation HR@10 unless told otherwise) kept and restored, then the test pass.
 */
import { MorecError } from '../errors';
import { metrics, Metrics } from '../metrics';
import { EPOCH_OPTIONS, EpochOptions, EpochResult, EvaluateOptions, Model } from '../model';
import { Sequences } from '../sequences';
import { knownKeys, nonNegativeInt, numberIn, positiveInt } from '../validate';

export interface FitOptions extends Omit<EpochOptions, 'epoch'> {
  maxEpochs?: number;
  /** Stop after this many validation passes without improvement. */
  patience?: number;
  /**
   * Patience grows with the run: stop after max(patience, ⌈patienceGrowth × validations up to the best⌉)
   * validations without improvement. Default 0.25 — chosen by measurement (README "Early stopping"): on
   * amazon-scientific and amazon-toys SASRec keeps improving slowly for 100+ epochs through noisy
   * validation, and a fixed patience of 5-10 stops at half the attainable test HR@10. 0 = fixed patience.
   */
  patienceGrowth?: number;
  /** Validation metric to select on, e.g. 'HR@10' or 'NDCG@10'. */
  monitor?: string;
  /** K values reported. */
  ks?: number[];
  /** Called after each epoch's validation. Return false to stop. */
  onEpoch?: (e: EpochReport) => void | boolean;
  onBatch?: (epoch: number, done: number, total: number, loss: number) => void;
  /** Called when a new best is found (e.g. to save a checkpoint); a returned promise is awaited before training goes on. */
  onBest?: (e: EpochReport) => void | Promise<unknown>;
  /**
   * Called after each epoch (after onBest) with the state a later fit({ resume }) continues from; save the
   * model (weights, optimizer and best weights) with it to make the run resumable. A returned promise is
   * awaited before the next epoch starts.
   */
  onState?: (state: FitState, e: EpochReport) => void | Promise<unknown>;
  /** Continue a run from a saved FitState; the model must hold that state's weights, optimizer and best snapshot. */
  resume?: FitState;
  /** Stops the running epoch or evaluation at its next batch; fit then rejects with EABORT. */
  signal?: AbortSignal;
  /** Options of the validation and test evaluations (e.g. the protocol's maskRepeatedTarget). */
  evaluate?: Omit<EvaluateOptions, 'split' | 'signal'>;
  /**
   * Validation passes per epoch (default 1): each epoch is trained in that many equal parts with a validation
   * after each, and patience counts validations (the study's DSSM text scripts validate 4 times per epoch).
   */
  validationsPerEpoch?: number;
}

/** Where a run stands after some epochs: enough to continue it exactly (epochs are seeded by their index). */
export interface FitState {
  /** Epochs done (fractional while an epoch is validated in parts). */
  epochs: number;
  /** Validation passes done (= epochs × validationsPerEpoch). */
  passes?: number;
  best?: { epoch: number; part?: number; value: number; valid: Metrics };
  sinceBest: number;
  history: EpochReport[];
  /** Seconds spent so far. */
  seconds: number;
  stopped: boolean;
}

export interface EpochReport {
  epoch: number;
  /** The part of the epoch this validation followed (validationsPerEpoch > 1). */
  part?: number;
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
  knownKeys(options, [...EPOCH_OPTIONS.filter((k) => k !== 'epoch'), 'maxEpochs', 'patience', 'patienceGrowth', 'monitor', 'ks', 'onEpoch', 'onBatch', 'onBest', 'onState', 'resume', 'evaluate', 'validationsPerEpoch'], 'fit');
  const perEpoch = positiveInt(options.validationsPerEpoch ?? 1, 'validationsPerEpoch');
  const maxEpochs = positiveInt(options.maxEpochs ?? 200, 'maxEpochs');
  const patience = nonNegativeInt(options.patience ?? 5, 'patience');
  const growth = numberIn(options.patienceGrowth ?? 0.25, 'patienceGrowth', 0, 10);
  const ks = options.ks ?? [10];
  const monitor = options.monitor ?? 'HR@10';
  const { maxEpochs: _m, patience: _p, patienceGrowth: _g, monitor: _mo, ks: _k, onEpoch, onBatch, onBest, onState, resume, signal, evaluate, validationsPerEpoch: _v, ...epochOptions } = options;
  const started = process.hrtime.bigint();
  const prior = resume?.seconds ?? 0;
  const history: EpochReport[] = [...(resume?.history ?? [])];
  // The best epoch's weights are snapshotted natively (a copy in the core, not through the JS heap).
  let best = resume?.best;
  let sinceBest = resume?.sinceBest ?? 0;
  let stopped = resume?.stopped ?? false;
  const evalOptions = { ...evaluate, ...(signal ? { signal } : {}) };
  for (let pass = resume?.passes ?? Math.round((resume?.epochs ?? 0) * perEpoch); pass < maxEpochs * perEpoch && !stopped; pass++) {
    const epoch = Math.floor(pass / perEpoch);
    const part = perEpoch > 1 ? { part: pass % perEpoch, parts: perEpoch } : {};
    const train = await model.trainEpoch(seqs, { ...epochOptions, ...(signal ? { signal } : {}), epoch, ...part }, onBatch ? (d, t, l) => onBatch(epoch, d, t, l) : undefined);
    const t0 = process.hrtime.bigint();
    const valid = metrics(await model.evaluate(seqs, { split: 'valid', ...evalOptions }), ks);
    const evalSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const value = valid[monitor];
    if (value === undefined) throw new MorecError('EINVAL', `Expected monitor to be one of ${Object.keys(valid).join(', ')} but received '${monitor}'`);
    const isBest = !best || value > best.value;
    const report: EpochReport = { epoch, ...(perEpoch > 1 ? { part: pass % perEpoch } : {}), loss: train.loss, trainSeconds: train.seconds, evalSeconds, valid, best: isBest, train };
    history.push(report);
    if (isBest) {
      best = { epoch, ...(perEpoch > 1 ? { part: pass % perEpoch } : {}), value, valid };
      model.snapshotWeights();
      sinceBest = 0;
      await onBest?.(report);
    } else {
      sinceBest++;
    }
    const go = onEpoch?.(report);
    const bestPasses = best ? best.epoch * perEpoch + (best.part ?? 0) + 1 : 0;
    stopped = go === false || sinceBest >= Math.max(1, patience, Math.ceil(growth * bestPasses));
    await onState?.({ epochs: (pass + 1) / perEpoch, passes: pass + 1, best, sinceBest, history, seconds: prior + Number(process.hrtime.bigint() - started) / 1e9, stopped }, report);
  }
  if (!best) throw new MorecError('EINVAL', 'no epoch was trained');
  model.restoreWeights();
  const testRanks = await model.evaluate(seqs, { split: 'test', ...evalOptions });
  return {
    bestEpoch: best.epoch,
    epochs: Math.ceil(history.length / perEpoch),
    valid: best.valid,
    test: metrics(testRanks, ks),
    history,
    seconds: prior + Number(process.hrtime.bigint() - started) / 1e9,
    testRanks,
  };
}
