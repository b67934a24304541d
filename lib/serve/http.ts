/**
 * The HTTP JSON service of `morec serve` (fastify): POST /recommend, GET /health, GET /metrics.
 *
 * createService wraps Recommenders already loaded (the caller keeps and closes them) in a fastify instance
 * that is not listening yet; serve() loads run folders, listens, and shuts down gracefully on SIGINT/SIGTERM.
 * Every error answers { error: { code, message } }: 400 EINVAL (the message names the field), 404 EUNKNOWN
 * (no such model) or ENOTFOUND (no such route), 413 / 415 EINVAL (body too large / not JSON), 422 EUNKNOWN
 * (an item or user id the model does not know), 503 ECLOSED (shutting down), 500 with the error's code.
 * fastify is loaded on first use, so that `require('morec')` does not pay for it.
 */
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { describe, MorecError, toMorecError } from '../errors';
import { didYouMean, nonNegativeInt, numberIn } from '../validate';
import { ProgressBar } from '../cli/progress';
import { DetailedRecommendation, RecommendOptions, RecommendQuery, Recommender, RecommenderOptions } from './recommender';

/** Most ids in one history, exclude or filter list. */
export const MAX_IDS = 10_000;
/** Most queries in one batch request. */
export const MAX_QUERIES = 1_000;
export const MAX_K = 1_000;
/** Largest request body (bytes) unless createService's bodyLimit says otherwise. */
export const BODY_LIMIT = 1 << 20;
/** Upper bounds (seconds) of the request-duration histogram's buckets. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const idList = { type: 'array', items: { type: 'string' }, maxItems: MAX_IDS };
const querySchema = { type: 'object', additionalProperties: false, properties: { history: idList, user: { type: 'string' } } };
const recommendSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    history: idList,
    user: { type: 'string' },
    queries: { type: 'array', items: querySchema, minItems: 1, maxItems: MAX_QUERIES },
    k: { type: 'integer', minimum: 1, maximum: MAX_K },
    exclude: idList,
    filter: idList,
    maskHistory: { type: 'boolean' },
    unknownItems: { enum: ['error', 'skip'] },
  },
};

/** The body of POST /recommend: one query (history and/or user) or a batch (queries), and the options. */
export interface RecommendRequest extends RecommendQuery, RecommendOptions {
  model?: string;
  queries?: RecommendQuery[];
}

export interface ServiceOptions {
  /** fastify's request logger (default false: no per-request logs). */
  logger?: boolean;
  /** Largest request body in bytes (default BODY_LIMIT, 1 MiB). */
  bodyLimit?: number;
}

/** An error answered with this HTTP status and code. */
class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** One ajv error (fastify's schema validation, with ajv's verbose option: the data and the schema). */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
  data?: unknown;
  parentSchema?: { properties?: Record<string, unknown>; minimum?: number; maximum?: number };
}

/** '/queries/0/history/3' -> 'queries[0].history[3]' */
function fieldName(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .reduce((name, part) => (/^\d+$/.test(part) ? `${name}[${part}]` : name ? `${name}.${part}` : part), '');
}

/** A schema validation failure as one sentence naming the field, in the style of morec's other messages. */
function validationMessage(e: SchemaError, hasBody: boolean): string {
  const field = fieldName(e.instancePath);
  const p = e.params;
  switch (e.keyword) {
    case 'additionalProperties': {
      const unknown = String(p.additionalProperty);
      const known = Object.keys(e.parentSchema?.properties ?? {});
      return `Unknown field ${unknown}${field ? ` in ${field}` : ''}${didYouMean(unknown, known)}; expected ${known.join(', ')}`;
    }
    case 'type':
      if (!field) return `Expected a JSON object body (Content-Type: application/json) but received ${hasBody ? describe(e.data) : 'no body'}`;
      return `Expected ${/^[aeiou]/.test(String(p.type)) ? 'an' : 'a'} ${p.type} for ${field} but received ${describe(e.data)}`;
    case 'minimum':
    case 'maximum':
      return `Expected an integer from ${e.parentSchema?.minimum} to ${e.parentSchema?.maximum} for ${field} but received ${describe(e.data)}`;
    case 'maxItems':
      return `Expected at most ${p.limit} entries in ${field} but received ${(e.data as unknown[]).length}`;
    case 'minItems':
      return `Expected at least ${p.limit} entr${p.limit === 1 ? 'y' : 'ies'} in ${field} but received ${(e.data as unknown[]).length}`;
    case 'enum':
      return `Expected one of ${(p.allowedValues as unknown[]).map((v) => `'${v}'`).join(', ')} for ${field} but received ${describe(e.data)}`;
    default:
      return `${field || 'The body'} ${e.message ?? 'is invalid'}`;
  }
}

const STATUS_OF_CODE: Record<string, number> = { EINVAL: 400, EUNKNOWN: 422, ECLOSED: 503 };

/** Any failure of a request as its HTTP status, code and message. */
function httpError(err: unknown, req: FastifyRequest, bodyLimit: number): HttpError {
  if (err instanceof HttpError) return err;
  const fe = err as FastifyError & { validation?: SchemaError[] };
  const contentType = req.headers['content-type'];
  if (fe?.validation?.length) return new HttpError(400, 'EINVAL', validationMessage(fe.validation[0], contentType !== undefined));
  switch (fe?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError(415, 'EINVAL', `Expected Content-Type application/json but received ${contentType === undefined ? 'none' : `'${contentType}'`}`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpError(413, 'EINVAL', `The body is larger than the limit of ${bodyLimit} bytes`);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, 'EINVAL', 'The body size does not match its Content-Length');
  }
  if (err instanceof MorecError) return new HttpError(STATUS_OF_CODE[err.code] ?? 500, err.code, err.message);
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return new HttpError(fe.statusCode, 'EINVAL', fe.message);
  const m = toMorecError(err);
  return new HttpError(500, m.code, m.message);
}

/** Request counts and the duration histogram per route, in Prometheus' text format. */
class RequestMetrics {
  private readonly counts = new Map<string, number>();
  private readonly durations = new Map<string, { buckets: number[]; sum: number; count: number }>();

  observe(route: string, status: number, seconds: number): void {
    const key = `${route}\n${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let d = this.durations.get(route);
    if (!d) this.durations.set(route, (d = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    const b = DURATION_BUCKETS.findIndex((upper) => seconds <= upper);
    if (b >= 0) d.buckets[b]++;
    d.sum += seconds;
    d.count++;
  }

  render(lines: string[]): void {
    lines.push('# HELP morec_requests_total HTTP requests answered, by route and status.', '# TYPE morec_requests_total counter');
    for (const [key, n] of this.counts) {
      const [route, status] = key.split('\n');
      lines.push(`morec_requests_total{route="${label(route)}",status="${status}"} ${n}`);
    }
    lines.push('# HELP morec_request_duration_seconds Time from receiving a request to sending its response.', '# TYPE morec_request_duration_seconds histogram');
    for (const [route, d] of this.durations) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((upper, i) => {
        cumulative += d.buckets[i];
        lines.push(`morec_request_duration_seconds_bucket{route="${label(route)}",le="${upper}"} ${cumulative}`);
      });
      lines.push(`morec_request_duration_seconds_bucket{route="${label(route)}",le="+Inf"} ${d.count}`);
      lines.push(`morec_request_duration_seconds_sum{route="${label(route)}"} ${d.sum}`);
      lines.push(`morec_request_duration_seconds_count{route="${label(route)}"} ${d.count}`);
    }
  }
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** The models' serving counters (Recommender.stats()) as Prometheus metrics. */
function renderModelMetrics(recommenders: Recommender[], lines: string[]): void {
  const families: [string, string, string, (s: ReturnType<Recommender['stats']>) => number][] = [
    ['morec_recommend_requests_total', 'counter', 'Queries answered by the model (a batch request counts each of its queries).', (s) => s.requests],
    ['morec_native_batches_total', 'counter', 'Native passes (one user-encoder pass and one scoring GEMM each) that answered them.', (s) => s.batches],
    ['morec_largest_batch', 'gauge', 'The most queries one native pass answered.', (s) => s.largestBatch],
    ['morec_in_flight', 'gauge', 'Recommend calls waiting or being scored now.', (s) => s.inFlight],
    ['morec_queued', 'gauge', 'Queries queued now, not yet in a native pass.', (s) => s.queued],
  ];
  const stats = recommenders.map((r) => {
    try {
      return r.stats();
    } catch {
      return undefined; // closed while shutting down
    }
  });
  for (const [name, type, help, value] of families) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    recommenders.forEach((r, i) => {
      const s = stats[i];
      if (s) lines.push(`${name}{model="${label(r.name)}"} ${value(s)}`);
    });
  }
}

/**
 * A fastify instance (not listening) serving these Recommenders. Its close() stops accepting connections and
 * waits for the requests in flight (answered with Connection: close); it does not close the Recommenders.
 */
export function createService(recommenders: Recommender[], options: ServiceOptions = {}): FastifyInstance {
  if (!Array.isArray(recommenders) || recommenders.length === 0 || !recommenders.every((r) => r instanceof Recommender))
    throw new MorecError('EINVAL', `Expected a non-empty array of Recommenders for recommenders but received ${describe(recommenders)}`);
  const byName = new Map<string, Recommender>();
  for (const r of recommenders) {
    if (byName.has(r.name)) throw new MorecError('EINVAL', `Two models are named '${r.name}'; give each a distinct name (RecommenderOptions.name)`);
    byName.set(r.name, r);
  }
  const bodyLimit = options.bodyLimit ?? BODY_LIMIT;
  const names = () => [...byName.keys()].map((n) => `'${n}'`).join(', ');
  const started = performance.now();
  const metrics = new RequestMetrics();
  let closing = false;

  const fastify = require('fastify') as typeof import('fastify').default;
  const app = fastify({
    logger: options.logger ?? false,
    bodyLimit,
    return503OnClosing: false,
    // Types are checked, not coerced; unknown fields are errors, not silently removed.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, verbose: true } },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(new MorecError('EINVAL', `The body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });
  app.setErrorHandler((err, req, reply) => {
    const e = httpError(err, req, bodyLimit);
    if (e.status >= 500 && e.status !== 503) req.log.error(err);
    reply.code(e.status).send({ error: { code: e.code, message: e.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'ENOTFOUND', message: `No route ${req.method} ${req.url}; the routes are POST /recommend, GET /health, GET /metrics` } });
  });
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // A request that arrives while shutting down (on a connection already open) is turned away; one that
  // arrived before is answered.
  app.addHook('onRequest', (req, _reply, done) => {
    done(closing && req.routeOptions.url === '/recommend' ? new HttpError(503, 'ECLOSED', 'The service is shutting down') : undefined);
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('connection', 'close'); // lets server.close() finish once this response is out
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    metrics.observe(req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  const pick = (model: string | undefined): Recommender => {
    if (model === undefined) {
      if (byName.size === 1) return recommenders[0];
      throw new HttpError(400, 'EINVAL', `Expected model (one of ${names()}) since ${byName.size} models are loaded but received none`);
    }
    const r = byName.get(model);
    if (!r) throw new HttpError(404, 'EUNKNOWN', `Unknown model '${model}'${didYouMean(model, [...byName.keys()])}; the loaded models are ${names()}`);
    return r;
  };

  app.post('/recommend', { schema: { body: recommendSchema } }, async (req) => {
    const { model, queries, history, user, ...options } = req.body as RecommendRequest;
    const recommender = pick(model);
    if (queries !== undefined) {
      if (history !== undefined || user !== undefined) throw new HttpError(400, 'EINVAL', 'Expected either queries (a batch) or history/user (one query) but received both');
      const results: DetailedRecommendation[] = await recommender.recommendBatchDetailed(queries, options);
      return { model: recommender.name, results };
    }
    const query: RecommendQuery = {};
    if (history !== undefined) query.history = history;
    if (user !== undefined) query.user = user;
    const r = await recommender.recommendDetailed(query, options);
    return { model: recommender.name, items: r.items, unknownItems: r.unknownItems };
  });

  app.get('/health', async (_req, reply) => {
    reply.code(closing ? 503 : 200);
    return {
      status: closing ? 'shutting-down' : 'ok',
      models: recommenders.map((r) => ({ name: r.name, backbone: r.backbone, itemTower: r.itemTower, items: r.numItems })),
      uptimeSeconds: (performance.now() - started) / 1000,
    };
  });

  app.get('/metrics', async (_req, reply) => {
    const lines: string[] = [];
    metrics.render(lines);
    renderModelMetrics(recommenders, lines);
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return `${lines.join('\n')}\n`;
  });
  return app;
}

export interface ServeOptions extends Pick<RecommenderOptions, 'dataset' | 'force' | 'threads' | 'batching' | 'maxBatch'> {
  /** Run folders (or checkpoint folders) to serve; each model is named after its run. */
  runs: string[];
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** No progress on stderr. */
  quiet?: boolean;
  /** fastify's request logger (default false). */
  logger?: boolean;
  /**
   * Install SIGINT/SIGTERM handlers (default true): the first signal stops accepting connections, lets the
   * requests in flight finish, closes the models and exits 0; a second one exits at once (130 / 143).
   */
  signals?: boolean;
}

export interface ServeHandle {
  app: FastifyInstance;
  /** e.g. 'http://127.0.0.1:8080' */
  url: string;
  address: { host: string; port: number };
  recommenders: Recommender[];
  /** Graceful shutdown: stop accepting, finish the requests in flight, close the models. */
  close(): Promise<void>;
}

/** Loads the run folders (progress on stderr), listens, and shuts down gracefully on SIGINT/SIGTERM. */
export async function serve(options: ServeOptions): Promise<ServeHandle> {
  const { runs, port = 8080, host = '127.0.0.1', quiet = false, logger = false, signals = true, ...loadOptions } = options;
  if (!Array.isArray(runs) || runs.length === 0 || runs.some((r) => typeof r !== 'string'))
    throw new MorecError('EINVAL', `Expected one or more run folders for runs but received ${describe(runs)}`);
  nonNegativeInt(port, 'port');
  numberIn(port, 'port', 0, 65535);
  const bar = new ProgressBar(quiet);
  const loading = new AbortController();
  const recommenders: Recommender[] = [];
  let handle: ServeHandle | undefined;
  let received: NodeJS.Signals | undefined;

  const onSignal = (sig: NodeJS.Signals) => {
    if (received) process.exit(sig === 'SIGINT' ? 130 : 143);
    received = sig;
    if (!handle) return loading.abort();
    if (!quiet) console.error(`${sig}: shutting down after the requests in flight (send it again to exit at once)`);
    handle.close().then(
      () => process.exit(0),
      (e) => {
        console.error(`${toMorecError(e).code}: ${toMorecError(e).message}`);
        process.exit(1);
      },
    );
  };
  const removeHandlers = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  if (signals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  try {
    for (const run of runs) {
      if (received) break;
      if (!quiet) console.error(`loading ${run}`);
      const r = await Recommender.load(run, {
        ...loadOptions,
        signal: loading.signal,
        warn: (m) => console.error(`WARNING: ${m}`),
        onProgress: (done, total) => bar.update('item table', done, total, 'items'),
      });
      recommenders.push(r);
      const same = recommenders.findIndex((other) => other.name === r.name);
      if (same < recommenders.length - 1) throw new MorecError('EINVAL', `${runs[same]} and ${run} are both named '${r.name}'; serve runs with distinct names`);
    }
    const app = createService(recommenders, { logger });
    if (!received) await app.listen({ port, host }).catch((e: NodeJS.ErrnoException) => {
      throw new MorecError('EIO', `cannot listen on ${host}:${port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (the port is in use; choose another)' : ''}`, { cause: e });
    });
    if (received) {
      await app.close();
      throw new MorecError('EABORT', 'stopped before listening');
    }
    const address = app.server.address();
    const bound = typeof address === 'object' && address ? { host: address.address, port: address.port } : { host, port };
    let closed: Promise<void> | undefined;
    handle = {
      app,
      url: `http://${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}`,
      address: bound,
      recommenders,
      close: () =>
        (closed ??= (async () => {
          try {
            await app.close();
            await Promise.all(recommenders.map((r) => r.close()));
          } finally {
            removeHandlers(); // only now: a second signal while draining exits at once
          }
        })()),
    };
    return handle;
  } catch (e) {
    removeHandlers();
    await Promise.allSettled(recommenders.map((r) => r.close()));
    if (received) throw new MorecError('EABORT', `${received}: stopped while loading the models`, { cause: e });
    throw e;
  }
}
