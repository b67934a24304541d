/**
 * Inference apart from training: a trained model answering "what next for this user" inside a service.
 *
 * A Recommender is loaded from a run folder (or wraps a Model). It builds the item table once (every item's
 * vector; encoder towers encode each item here, on morec's job thread, with progress and an AbortSignal) and
 * keeps it in native memory; no optimizer state is ever allocated. Each recommend() is queued natively: the
 * core's serving thread takes every request queued for this Recommender at once (micro-batching: one user-encoder
 * pass and one GEMM against the item table for all of them), masks each user's history, exclusions and filter,
 * and selects the top K natively. The event loop only converts ids.
 *
 * External ids in and out: histories, exclusions and filters are the data set's item ids; DSSM users are the
 * data set's user ids. A SASRec user may be given by id too (its whole known sequence is the history).
 */
import { describe, invalid, MorecError, toMorecError } from '../errors';
import { knownKeys, positiveInt } from '../validate';
import { Model } from '../model';
import { loadAddon, NativeScorer, NativeScorerStats } from '../native';
import { Sequences } from '../sequences';
import { openRun, OpenRunOptions } from '../run';
import { JobOptions } from '../jobs';

/** One user to recommend for: its item history (external ids, oldest first), its user id, or both. */
export interface RecommendQuery {
  /** Item ids in time order. SASRec encodes the last maxLen of them; every one of them is masked by default. */
  history?: string[];
  /** A user id of the model's data. DSSM embeds it; SASRec reads the user's known sequence as its history. */
  user?: string;
}

export interface RecommendOptions {
  /** How many items (default 10; fewer come back when fewer are allowed). */
  k?: number;
  /** Item ids never to return. */
  exclude?: string[];
  /** Only these item ids may be returned (an allow-list). */
  filter?: string[];
  /** Mask the user's history (default true): items the user already has are not recommended. */
  maskHistory?: boolean;
  /**
   * Item ids the model does not know, in history, exclude or filter: 'error' (default) rejects with EUNKNOWN
   * naming them; 'skip' leaves them out (recommendDetailed lists them).
   */
  unknownItems?: 'error' | 'skip';
}

export interface Recommendation {
  item: string;
  score: number;
}

export interface DetailedRecommendation {
  items: Recommendation[];
  /** Item ids that were left out because the model does not know them (unknownItems 'skip'). */
  unknownItems: string[];
}

export interface RecommenderOptions extends OpenRunOptions, JobOptions {
  /**
   * Micro-batching (default true): concurrent requests are scored together, up to maxBatch per native pass.
   * false: one native pass per request.
   */
  batching?: boolean;
  /** Most requests per native pass (default 256). */
  maxBatch?: number;
  /** Progress of building the item table: (items done, items). */
  onProgress?: (done: number, total: number) => void;
  /** A name for this model (default: the run folder's name). */
  name?: string;
}

export interface RecommenderStats extends NativeScorerStats {
  /** Requests waiting or being scored now. */
  inFlight: number;
}

const RECOMMEND_OPTIONS = ['k', 'exclude', 'filter', 'maskHistory', 'unknownItems'] as const;
const QUERY_KEYS = ['history', 'user'] as const;

/** The ids a Recommender speaks, and the users' known sequences (for users given by id). */
export interface RecommenderIds {
  /** itemIds[i - 1] is item index i's id (Dataset.itemIds). */
  itemIds: string[];
  /** userIds[u] is user index u's id (Dataset.userIds); needed for DSSM and for users given by id. */
  userIds?: string[];
  /** The users' known sequences (Dataset.sequences): the history of a user given by id. */
  sequences?: Sequences;
}

function stringArray(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw invalid('an array of id strings', name, value);
  for (let i = 0; i < value.length; i++)
    if (typeof value[i] !== 'string') throw invalid('an id string', `${name}[${i}]`, value[i]);
  return value as string[];
}

export class Recommender {
  readonly name: string;
  readonly backbone: 'sasrec' | 'dssm';
  readonly itemTower: string;
  readonly numItems: number;
  /** The model's configuration (read-only). */
  readonly config: Model['config'];
  /** Released at close(): a model the Recommender loaded is then freed with its native memory at the next GC. */
  private model?: Model;
  private readonly scorer: NativeScorer;
  private readonly itemIds: string[];
  private readonly itemIndex: Map<string, number>;
  private readonly userIndex: Map<string, number>;
  private readonly sequences?: Sequences;
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  private constructor(model: Model, scorer: NativeScorer, ids: RecommenderIds, name: string) {
    this.model = model;
    this.scorer = scorer;
    this.name = name;
    this.config = model.config;
    this.backbone = model.config.backbone;
    this.itemTower = model.config.itemTower;
    this.numItems = model.config.numItems;
    this.itemIds = ids.itemIds;
    this.itemIndex = new Map(ids.itemIds.map((id, i) => [id, i + 1]));
    this.userIndex = new Map((ids.userIds ?? []).map((id, u) => [id, u]));
    this.sequences = ids.sequences;
  }

  /**
   * Loads a run folder's best checkpoint (or a bare checkpoint folder) with the data it was trained on (checked
   * by fingerprint; options.dataset / force as for `morec eval`), then builds the item table.
   */
  static async load(runDir: string, options: RecommenderOptions = {}): Promise<Recommender> {
    if (typeof runDir !== 'string' || runDir.length === 0) throw invalid('a run folder path', 'runDir', runDir);
    checkRecommenderOptions(options);
    const { model, data, runConfig } = await openRun(runDir, { dataset: options.dataset, force: options.force, threads: options.threads, warn: options.warn });
    const name = options.name ?? runConfig.name ?? runDir.replace(/\/+$/, '').split('/').pop() ?? 'model';
    return Recommender.fromModel(model, { itemIds: data.itemIds, userIds: data.userIds, sequences: data.sequences }, { ...options, name });
  }

  /**
   * Serves a Model already in memory. The model becomes read-only while served: training, evaluation and
   * weight changes are refused (EBUSY) until close().
   */
  static async fromModel(model: Model, ids: RecommenderIds, options: RecommenderOptions = {}): Promise<Recommender> {
    if (!(model instanceof Model)) throw invalid('a Model', 'model', model);
    checkRecommenderOptions(options);
    if (typeof ids !== 'object' || ids === null) throw invalid('an object with itemIds', 'ids', ids);
    const itemIds = stringArray(ids.itemIds, 'itemIds');
    if (itemIds.length !== model.config.numItems)
      throw new MorecError('EINVAL', `Expected ${model.config.numItems} item ids (the model's numItems) but received ${itemIds.length}`);
    if (ids.userIds !== undefined) stringArray(ids.userIds, 'userIds');
    if (ids.sequences !== undefined && !(ids.sequences instanceof Sequences)) throw invalid('a Sequences object', 'sequences', ids.sequences);
    if (ids.sequences && ids.userIds && ids.sequences.users !== ids.userIds.length)
      throw new MorecError('EINVAL', `Expected sequences for the ${ids.userIds.length} users of userIds but received ${ids.sequences.users}`);
    if (model.config.backbone === 'dssm' && ids.userIds === undefined)
      throw new MorecError('EINVAL', "Expected userIds for a DSSM model (its user tower embeds user ids) but received undefined");
    const table = await model.itemVectors(options.onProgress, { signal: options.signal });
    const scorer = callNative(() => new (loadAddon().Scorer)(model.native, table, {
      maxBatch: options.batching === false ? 1 : options.maxBatch ?? 256,
      threads: options.threads ?? 0,
    }));
    return new Recommender(model, scorer, { ...ids, itemIds }, options.name ?? 'model');
  }

  /** Whether the model knows this item id / user id. */
  hasItem(id: string): boolean {
    return this.itemIndex.has(id);
  }
  hasUser(id: string): boolean {
    return this.userIndex.has(id);
  }

  /** The top-k items for one user: a history of item ids, or { history?, user? }. */
  async recommend(query: string[] | RecommendQuery, options: RecommendOptions = {}): Promise<Recommendation[]> {
    return (await this.recommendDetailed(query, options)).items;
  }

  /** recommend(), also listing the unknown item ids that were skipped (options.unknownItems 'skip'). */
  async recommendDetailed(query: string[] | RecommendQuery, options: RecommendOptions = {}): Promise<DetailedRecommendation> {
    const [r] = await this.recommendBatchDetailed([query], options);
    return r;
  }

  /** recommend() for many users at once (scored in the same native passes as other queued requests). */
  async recommendBatch(queries: (string[] | RecommendQuery)[], options: RecommendOptions = {}): Promise<Recommendation[][]> {
    return (await this.recommendBatchDetailed(queries, options)).map((r) => r.items);
  }

  async recommendBatchDetailed(queries: (string[] | RecommendQuery)[], options: RecommendOptions = {}): Promise<DetailedRecommendation[]> {
    if (this.closed) throw new MorecError('ECLOSED', `the recommender '${this.name}' is closed`);
    if (!Array.isArray(queries)) throw invalid('an array of queries', 'queries', queries);
    const o = this.checkOptions(options);
    const skip = o.unknownItems === 'skip';
    const unknownShared: string[] = [];
    const exclude = o.exclude ? this.indices(o.exclude, 'exclude', skip, unknownShared) : new Int32Array(0);
    const filter = o.filter ? this.indices(o.filter, 'filter', skip, unknownShared) : null;
    const unknown = queries.map(() => [...unknownShared]);
    const requests = queries.map((q, i) => {
      const { history, user } = this.resolveQuery(q, queries.length > 1 ? `queries[${i}]` : 'query', skip, unknown[i]);
      return [history, user, o.k ?? 10, exclude, filter, o.maskHistory ?? true] as const;
    });
    // Queued together natively: the queries of one call share a pass (up to maxBatch), with whatever else is queued.
    const jobs = callNative(() => this.scorer.recommendMany(requests)).map((p, i) =>
      p.then(
        (r) => ({ items: this.toRecommendations(r.items, r.scores), unknownItems: unknown[i] }),
        (e) => Promise.reject(toMorecError(e)),
      ),
    );
    const all = Promise.all(jobs);
    this.track(all);
    return all;
  }

  /** Counts of the native serving path: requests, native passes (batches), the largest batch. */
  stats(): RecommenderStats {
    return { ...callNative(() => this.scorer.stats()), inFlight: this.pending.size };
  }

  /**
   * Frees the native memory (item table, model) once the requests in flight are answered; later calls reject
   * with ECLOSED. A Model passed to fromModel becomes usable again.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    this.scorer.close();
    this.model = undefined;
  }

  private track(p: Promise<unknown>): void {
    const done = () => this.pending.delete(p);
    this.pending.add(p);
    p.then(done, done);
  }

  private checkOptions(o: RecommendOptions): RecommendOptions {
    if (typeof o !== 'object' || o === null) throw invalid('an options object', 'options', o);
    knownKeys(o, RECOMMEND_OPTIONS, 'recommend');
    if (o.k !== undefined) positiveInt(o.k, 'k');
    if (o.exclude !== undefined) stringArray(o.exclude, 'exclude');
    if (o.filter !== undefined) stringArray(o.filter, 'filter');
    if (o.maskHistory !== undefined && typeof o.maskHistory !== 'boolean') throw invalid('a boolean', 'maskHistory', o.maskHistory);
    if (o.unknownItems !== undefined && o.unknownItems !== 'error' && o.unknownItems !== 'skip')
      throw invalid("'error' or 'skip'", 'unknownItems', o.unknownItems);
    return o;
  }

  /** Item ids -> indices; unknown ids are an EUNKNOWN error, or skipped and listed. */
  private indices(ids: string[], name: string, skip: boolean, unknown: string[]): Int32Array {
    const out = new Int32Array(ids.length);
    let n = 0;
    const missing: string[] = [];
    for (const id of ids) {
      const i = this.itemIndex.get(id);
      if (i === undefined) missing.push(id);
      else out[n++] = i;
    }
    if (missing.length && !skip) {
      const shown = missing.slice(0, 5).map((m) => `'${m}'`).join(', ');
      throw new MorecError('EUNKNOWN', `${name} holds ${missing.length} item id${missing.length > 1 ? 's' : ''} the model '${this.name}' does not know: ${shown}${missing.length > 5 ? ', …' : ''}`);
    }
    unknown.push(...missing);
    return out.subarray(0, n);
  }

  private resolveQuery(q: string[] | RecommendQuery, name: string, skip: boolean, unknown: string[]): { history: Int32Array; user: number } {
    if (Array.isArray(q)) q = { history: q };
    if (typeof q !== 'object' || q === null) throw invalid('an array of item ids or { history, user }', name, q);
    knownKeys(q, QUERY_KEYS, 'query');
    if (q.history === undefined && q.user === undefined) throw new MorecError('EINVAL', `Expected ${name} to give a history or a user but it gives neither`);
    let user = -1;
    let known: Int32Array | undefined;
    if (q.user !== undefined) {
      if (typeof q.user !== 'string') throw invalid('a user id string', `${name}.user`, q.user);
      const u = this.userIndex.get(q.user);
      if (u === undefined) throw new MorecError('EUNKNOWN', `${name}.user '${q.user}' is not a user the model '${this.name}' knows`);
      if (this.backbone === 'dssm') user = u;
      if (this.sequences) known = this.sequences.sequence(u);
    }
    let history = q.history !== undefined ? this.indices(stringArray(q.history, `${name}.history`), `${name}.history`, skip, unknown) : known ?? new Int32Array(0);
    if (q.history !== undefined && known && this.backbone === 'dssm') {
      // DSSM: the user tower reads the id; the history given only adds to what is masked.
      const both = new Int32Array(known.length + history.length);
      both.set(known);
      both.set(history, known.length);
      history = both;
    }
    if (this.backbone === 'dssm' && user < 0)
      throw new MorecError('EINVAL', `${name}: DSSM's user tower embeds user ids, so it cannot encode a history alone; give { user }`);
    if (this.backbone === 'sasrec' && history.length === 0)
      throw new MorecError('EINVAL', `${name}: SASRec needs at least one known item in the history ${describe(q.history ?? q.user)}`);
    return { history, user };
  }

  private toRecommendations(items: Int32Array, scores: Float32Array): Recommendation[] {
    const out: Recommendation[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) out[i] = { item: this.itemIds[items[i] - 1], score: scores[i] };
    return out;
  }
}

function checkRecommenderOptions(o: RecommenderOptions): void {
  if (typeof o !== 'object' || o === null) throw invalid('an options object', 'options', o);
  knownKeys(o, ['dataset', 'force', 'threads', 'warn', 'signal', 'batching', 'maxBatch', 'onProgress', 'name'], 'recommender');
  if (o.batching !== undefined && typeof o.batching !== 'boolean') throw invalid('a boolean', 'batching', o.batching);
  if (o.maxBatch !== undefined) positiveInt(o.maxBatch, 'maxBatch');
  if (o.threads !== undefined) positiveInt(o.threads, 'threads');
  if (o.name !== undefined && typeof o.name !== 'string') throw invalid('a string', 'name', o.name);
}

function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toMorecError(e);
  }
}
