export { Recommender, RecommendQuery, RecommendOptions, Recommendation, DetailedRecommendation, RecommenderOptions, RecommenderStats, RecommenderIds } from './recommender';
export { createService, serve, ServiceOptions, ServeOptions, ServeHandle, RecommendRequest, MAX_IDS, MAX_QUERIES, MAX_K, BODY_LIMIT, DURATION_BUCKETS } from './http';
