export { extractFeatures, listFeatureCaches, openFeatureCache, probeOnnx, featureCacheKey, FEATURE_CACHE_FORMAT } from './extract';
export type { ExtractOptions, FeatureCache, FeatureInputs } from './extract';
export { featureTowerOrDropped, prepareFeatureTower, onnxFileOf } from './feature_tower';
export type { FeatureTowerOptions, PreparedFeatureTower } from './feature_tower';
