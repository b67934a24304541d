/**
 * Evaluation and stopping protocols. 'morec' is this project's default; 'paper' follows the official
 * IDvs.MoRec code (westlake-repl/IDvs.MoRec) line by line:
 * - SASRec stops after more than 6 validations without a better HR@10 (patience 7), cap 150 epochs;
 * - DSSM on text data stops after more than 10 (patience 11), cap 60; on vision data after more than 5, cap 150;
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
  /** Validation passes without improvement before stopping. */
  patience: number;
  /** Count a test target the user saw before as a miss (masked with the history). */
  maskRepeatedTarget: boolean;
}

/** morec's default stopping rule (see README "Early stopping" for the measurement behind it). */
export const MOREC_PATIENCE = 10;
export const MOREC_MAX_EPOCHS = 200;

export function protocolFor(name: ProtocolName, backbone: 'sasrec' | 'dssm', kind: DataKind): Protocol {
  if (name === 'morec') return { name, maxLen: 20, minSeqLen: 5, maxEpochs: MOREC_MAX_EPOCHS, patience: MOREC_PATIENCE, maskRepeatedTarget: false };
  const maxLen = kind === 'vision' ? 10 : 20;
  if (backbone === 'sasrec') return { name, maxLen, minSeqLen: 5, maxEpochs: 150, patience: 7, maskRepeatedTarget: true };
  return kind === 'text'
    ? { name, maxLen, minSeqLen: 5, maxEpochs: 60, patience: 11, maskRepeatedTarget: true }
    : { name, maxLen, minSeqLen: 5, maxEpochs: 150, patience: 6, maskRepeatedTarget: true };
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
