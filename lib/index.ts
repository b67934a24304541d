/** morec: ID- and modality-based recommenders on a libtorch core. The public API. */
export { MorecError, MorecErrorCode } from './errors';
export { Model, ModelConfig, EpochOptions, EpochResult, EvaluateOptions, CheckpointInfo, Backbone } from './model';
export { Sequences } from './sequences';
export { setThreads, getThreads } from './threads';
export { JobOptions } from './jobs';
export { metrics, Metrics } from './metrics';
export { readSafetensors, writeSafetensors } from './io/safetensors';
export { loadAddon } from './native';
export { popularityRanks } from './popularity';
export { prepareDataset, loadRaw, formatLoadReport, Dataset, LoadReport, PrepareOptions, defaultCacheDir } from './data/dataset';
export { fit, FitOptions, FitResult, EpochReport } from './train/fit';
export { generateSyntheticWorld, SyntheticOptions, SyntheticWorld } from './data/synthetic';
export { preprocess, PreprocessOptions, Preprocessed } from './data/preprocess';
export { runStudy, formatTable, MODEL_PRESETS, StudyOptions, ResultRow } from './study';
export { ItemStore, ItemTokens } from './item_store';
export { prepareTextTower, buildWordVocab, TextTowerOptions, PreparedTextTower } from './text/text_tower';
export { resolveTextEncoder, textEncoderPresets, encoderConfigFromHf, TextEncoderSpec } from './text/encoder';
export { loadTokenizer, TextTokenizer } from './text/tokenizer';
