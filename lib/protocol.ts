/**
 * Evaluation and stopping protocols. 'morec' is this project's default; 'paper' follows the official
 * IDvs.MoRec code (westlake-repl/IDvs.MoRec) line by line:
 * - SASRec stops after more than 6 validations without a better HR@10 (patience 7), cap 150 epochs;
 * - DSSM on text data validates 4 times per epoch and stops after more than 10 validations without a better
 *   HR@10 (patience 11), cap 60 epochs; on vision data once per epoch, after more than 5, cap 150;
 * - text data sets keep L = 20, vision data sets (H&M, Bili) L = 10 (users keep their last L + 3 items);
 * - a test target the user saw before is masked with the history (always a miss).
 * Every result records its protocol as one line (describeProtocol), as RecBole does.
 */
export type ProtocolName = 'morec' | 'paper';
export type DataKind = 'text' | 'vision';

export interface Protocol {
  name: ProtocolName;
  maxLen: number;
  minSeqLen: number;
  maxEpochs: number;
  /** Validation passes without improvement before stopping... */
  patience: number;
  /** ...or more: max(patience, ⌈patienceGrowth × validations up to the best⌉) (see FitOptions.patienceGrowth). */
  patienceGrowth: number;
  /** Count a test target the user saw before as a miss (masked with the history). */
  maskRepeatedTarget: boolean;
  /** Validations per epoch (the official DSSM text scripts: 4); patience counts validations. */
  validationsPerEpoch: number;
}

/**
 * morec's default stopping rule, chosen by measurement (bench/stopping.ts, README "Early stopping"): patience
 * max(5, ⌈25% of the validations up to the best⌉), at most 200 epochs.
 */
export const MOREC_PATIENCE = 5;
export const MOREC_PATIENCE_GROWTH = 0.25;
export const MOREC_MAX_EPOCHS = 200;

export function protocolFor(name: ProtocolName, backbone: 'sasrec' | 'dssm', kind: DataKind): Protocol {
  if (name === 'morec') return { name, maxLen: 20, minSeqLen: 5, maxEpochs: MOREC_MAX_EPOCHS, patience: MOREC_PATIENCE, patienceGrowth: MOREC_PATIENCE_GROWTH, maskRepeatedTarget: false, validationsPerEpoch: 1 };
  const maxLen = kind === 'vision' ? 10 : 20;
  if (backbone === 'sasrec') return { name, maxLen, minSeqLen: 5, maxEpochs: 150, patience: 7, patienceGrowth: 0, maskRepeatedTarget: true, validationsPerEpoch: 1 };
  return kind === 'text'
    ? { name, maxLen, minSeqLen: 5, maxEpochs: 60, patience: 11, patienceGrowth: 0, maskRepeatedTarget: true, validationsPerEpoch: 4 }
    : { name, maxLen, minSeqLen: 5, maxEpochs: 150, patience: 6, patienceGrowth: 0, maskRepeatedTarget: true, validationsPerEpoch: 1 };
}

/** "leave-one-out, full ranking over all items, history masked, ..." — the line every result row carries. */
export function describeProtocol(p: { name: string; maxLen: number; minSeqLen: number; maskRepeatedTarget: boolean; warm?: number }): string {
  return [
    `${p.name}: leave-one-out (test = last item, valid = second to last)`,
    'full ranking over all items',
    p.maskRepeatedTarget ? 'history masked, a repeated target counts as a miss' : 'history masked except the target',
    `users with >= ${p.minSeqLen} interactions keep their last ${p.maxLen} + 3`,
    ...(p.warm ? [`warm-${p.warm}: items with < ${p.warm} interactions dropped`] : []),
  ].join(', ');
}

export type GridValues = Record<string, (number | string | boolean)[]>;

/**
 * The hyper-parameter grids of the official scripts (train_*.py of westlake-repl/IDvs.MoRec), by backbone,
 * item tower and data kind; single values are the scripts' fixed settings. `grid: 'paper'` in a study file
 * trains each model over its grid (that is many runs: 16 to 54 cells per model and data set).
 */
export const PAPER_GRIDS: Record<string, GridValues> = {
  // bce_text/main-end2end/train_id.py and bce_vision/main-end2end/train_id.py
  'sasrec-id-text': { batchSize: [128], dropout: [0.1], weightDecay: [0.1], lr: [1e-4, 5e-5, 1e-3, 5e-4], d: [512, 1024, 2048, 4096] },
  'sasrec-id-vision': { batchSize: [128], dropout: [0.1], weightDecay: [0.1], lr: [1e-4, 5e-5, 1e-3, 5e-4], d: [512, 1024, 2048, 4096] },
  // bce_text/main-end2end/train_bert_base.py: (lr, fine-tune lr) pairs (1e-4, 5e-5) and (5e-5, 5e-5)
  'sasrec-text-text': { batchSize: [32], dropout: [0.1], weightDecay: [0.01], d: [512], lr: [1e-4, 5e-5], encoderLr: [5e-5] },
  // bce_text/main-end2end(DSSM)/train_id.py
  'dssm-id-text': { batchSize: [512], dropout: [0.1], weightDecay: [0.01, 0.1], d: [512, 1024, 2048], lr: [1e-3, 1e-4, 5e-4], dssmDepth: [0, 2, 4] },
  // bce_text/main-end2end(DSSM)/train_bert_base.py
  'dssm-text-text': { batchSize: [512], dropout: [0.1], weightDecay: [0.01], d: [512], dssmDepth: [0], lr: [1e-4], encoderLr: [5e-5, 1e-5] },
  // bce_vision/main-end2end(DSSM)/train_id.py
  'dssm-id-vision': { batchSize: [512, 1024], dropout: [0.1], weightDecay: [0, 0.01, 0.1], d: [512, 1024], lr: [1e-3, 1e-4], dssmDepth: [0] },
};

/** The paper grid of a model, or undefined where the official scripts have none for it. */
export function paperGrid(backbone: 'sasrec' | 'dssm', itemTower: string, kind: DataKind): GridValues | undefined {
  return PAPER_GRIDS[`${backbone}-${itemTower}-${kind}`];
}
