// The HTTP service (lib/serve/http.ts): POST /recommend answers exactly what the library answers, every 4xx
// path says which field is wrong, /health and /metrics count what happened, and `morec serve` shuts down
// gracefully on SIGTERM.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Dataset, DetailedRecommendation, prepareDataset, Recommender, trainRun, TrainConfig } from '../lib';
import { prepareOptionsOf } from '../lib/run';
import { createService, MAX_IDS, MAX_QUERIES } from '../lib/serve/http';

const cli = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-serve-http-'));
process.env.MOREC_CACHE = path.join(work, 'cache');

const CFG: TrainConfig = {
  dataset: 'synthetic', maxLen: 10, minSeqLen: 5, seed: 3, scale: 0.1,
  model: { backbone: 'sasrec', d: 16, heads: 2, blocks: 1 },
  train: { batchSize: 64, lr: 3e-3, weightDecay: 0.1, epochs: 1, patience: 2, gradAccum: 1 },
  threads: 2,
};
const sasDir = path.join(work, 'sas');
const dssmDir = path.join(work, 'dssm');
let data: Dataset;
let sas: Recommender;
let dssm: Recommender;
let app: FastifyInstance;
let url: string;

/** User u's whole known sequence as item ids. */
function historyOf(u: number): string[] {
  return Array.from(data.sequences.sequence(u), (i) => data.itemIds[i - 1]);
}

async function post(body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }, base = url) {
  const res = await fetch(`${base}/recommend`, { method: 'POST', headers, body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Prometheus text -> { 'name{labels}': value } */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

before(async () => {
  await trainRun(sasDir, CFG, { mode: 'new' });
  await trainRun(dssmDir, { ...CFG, model: { backbone: 'dssm', d: 16 } }, { mode: 'new' });
  data = await prepareDataset('synthetic', prepareOptionsOf(CFG));
  sas = await Recommender.load(sasDir);
  dssm = await Recommender.load(dssmDir);
  app = createService([sas, dssm]);
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});

after(async () => {
  await app.close();
  await Promise.all([sas.close(), dssm.close()]);
  fs.rmSync(work, { recursive: true, force: true });
});

test('POST /recommend answers exactly what recommend() answers in-process: one query, options, a batch, DSSM users', async () => {
  // One request at a time: each is a native pass of its own, as the in-process call is, so the scores are bit-equal.
  for (let u = 0; u < 5; u++) {
    const history = historyOf(u);
    const r = await post({ model: 'sas', history });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { model: 'sas', items: await sas.recommend(history), unknownItems: [] });
  }
  const options = { k: 7, exclude: historyOf(1).slice(0, 3), filter: data.itemIds.slice(0, 40), maskHistory: false };
  const one = await post({ model: 'sas', history: historyOf(2), ...options });
  assert.deepEqual(one.json.items, await sas.recommend(historyOf(2), options));
  assert.equal(one.json.items.length, 7);

  // A batch's queries may be scored in one native pass or split across two (as the serving thread picks them
  // up), and a pass's GEMM rounds a score by its row count: the same items, scores equal to float32 rounding.
  const queries = [{ history: historyOf(0) }, { user: data.userIds[3] }, { history: historyOf(4), user: data.userIds[4] }];
  const batch = await post({ model: 'sas', queries, k: 5 });
  assert.equal(batch.status, 200, JSON.stringify(batch.json));
  assert.equal(batch.json.model, 'sas');
  const expected = await sas.recommendBatchDetailed(queries, { k: 5 });
  assert.equal(batch.json.results.length, 3);
  batch.json.results.forEach((r: DetailedRecommendation, i: number) => {
    assert.deepEqual(r.unknownItems, []);
    assert.deepEqual(r.items.map((x) => x.item), expected[i].items.map((x) => x.item));
    r.items.forEach((x, j) => assert.ok(Math.abs(x.score - expected[i].items[j].score) <= 1e-6 * Math.max(1, Math.abs(x.score)), `${x.score} vs ${expected[i].items[j].score}`));
  });

  const d = await post({ model: 'dssm', user: data.userIds[5], k: 3 });
  assert.deepEqual(d.json, { model: 'dssm', items: await dssm.recommend({ user: data.userIds[5] }, { k: 3 }), unknownItems: [] });

  // With one model loaded, model may be left out.
  const single = createService([sas]);
  await single.listen({ port: 0, host: '127.0.0.1' });
  try {
    const s = await post({ history: historyOf(0) }, undefined, `http://127.0.0.1:${(single.server.address() as { port: number }).port}`);
    assert.deepEqual(s.json, { model: 'sas', items: await sas.recommend(historyOf(0)), unknownItems: [] });
  } finally {
    await single.close();
  }
});

test('every 4xx path: its status, its code, and a message naming the field', async () => {
  const h = historyOf(0);
  const json = { 'content-type': 'application/json' };
  const cases: [string, unknown, Record<string, string>, number, string, RegExp][] = [
    ['no body', undefined, {}, 400, 'EINVAL', /Expected a JSON object body \(Content-Type: application\/json\) but received no body/],
    ['empty JSON body', '', json, 400, 'EINVAL', /not valid JSON/],
    ['malformed JSON', '{"model": "sas", "history": [', json, 400, 'EINVAL', /The body is not valid JSON: /],
    ['a JSON array', '[1, 2]', json, 400, 'EINVAL', /Expected a JSON object body .* but received an array/],
    ['text/plain', JSON.stringify({ model: 'sas', history: h }), { 'content-type': 'text/plain' }, 415, 'EINVAL', /Expected Content-Type application\/json but received 'text\/plain'/],
    ['history not an array', { model: 'sas', history: 'item00001' }, json, 400, 'EINVAL', /Expected an array for history but received 'item00001'/],
    ['a number in history', { model: 'sas', history: [h[0], 7] }, json, 400, 'EINVAL', /Expected a string for history\[1\] but received 7/],
    ['k 0', { model: 'sas', history: h, k: 0 }, json, 400, 'EINVAL', /Expected an integer from 1 to 1000 for k but received 0/],
    ['k too big', { model: 'sas', history: h, k: 1001 }, json, 400, 'EINVAL', /Expected an integer from 1 to 1000 for k but received 1001/],
    ['k not an integer', { model: 'sas', history: h, k: 2.5 }, json, 400, 'EINVAL', /Expected an integer for k but received 2\.5/],
    ['k a string', { model: 'sas', history: h, k: '5' }, json, 400, 'EINVAL', /Expected an integer for k but received '5'/],
    ['maskHistory not a boolean', { model: 'sas', history: h, maskHistory: 'no' }, json, 400, 'EINVAL', /Expected a boolean for maskHistory but received 'no'/],
    ['unknownItems not a choice', { model: 'sas', history: h, unknownItems: 'ignore' }, json, 400, 'EINVAL', /Expected one of 'error', 'skip' for unknownItems but received 'ignore'/],
    ['an unknown field', { model: 'sas', histroy: h }, json, 400, 'EINVAL', /Unknown field histroy \(did you mean history\?\); expected model, history, user, queries, k/],
    ['an unknown field in a query', { model: 'sas', queries: [{ history: h }, { history: h, k: 3 }] }, json, 400, 'EINVAL', /Unknown field k in queries\[1\]/],
    ['__proto__', `{"__proto__": {"k": 1}, "model": "sas", "history": ${JSON.stringify(h)}}`, json, 400, 'EINVAL', /Unknown field __proto__/],
    ['no queries', { model: 'sas', queries: [] }, json, 400, 'EINVAL', /Expected at least 1 entry in queries but received 0/],
    ['too many queries', { model: 'sas', queries: Array(MAX_QUERIES + 1).fill({ history: ['x'] }) }, json, 400, 'EINVAL', /Expected at most 1000 entries in queries but received 1001/],
    ['too long a history', { model: 'sas', history: Array(MAX_IDS + 1).fill('x') }, json, 400, 'EINVAL', /Expected at most 10000 entries in history but received 10001/],
    ['both queries and history', { model: 'sas', history: h, queries: [{ history: h }] }, json, 400, 'EINVAL', /either queries .* or history\/user/],
    ['neither history nor user', { model: 'sas', k: 3 }, json, 400, 'EINVAL', /a history or a user/],
    ['no model with two loaded', { history: h }, json, 400, 'EINVAL', /Expected model \(one of 'sas', 'dssm'\) since 2 models are loaded/],
    ['model not a string', { model: 1, history: h }, json, 400, 'EINVAL', /Expected a string for model but received 1/],
    ['an unknown model', { model: 'sasrec', history: h }, json, 404, 'EUNKNOWN', /Unknown model 'sasrec'.*the loaded models are 'sas', 'dssm'/],
    ['an unknown item', { model: 'sas', history: [...h, 'no-such-item'] }, json, 422, 'EUNKNOWN', /history holds 1 item id the model 'sas' does not know: 'no-such-item'/],
    ['an unknown item in exclude', { model: 'sas', history: h, exclude: ['nope'] }, json, 422, 'EUNKNOWN', /exclude holds 1 item id .*'nope'/],
    ['an unknown user', { model: 'dssm', user: 'no-such-user' }, json, 422, 'EUNKNOWN', /user 'no-such-user' is not a user the model 'dssm' knows/],
    ['DSSM with a history only', { model: 'dssm', history: h }, json, 400, 'EINVAL', /DSSM's user tower embeds user ids.*give \{ user \}/],
    ['a body over 1 MiB', JSON.stringify({ model: 'sas', history: Array(200_000).fill('item00001') }), json, 413, 'EINVAL', /The body is larger than the limit of 1048576 bytes/],
  ];
  for (const [name, body, headers, status, code, message] of cases) {
    const r = await post(body, headers);
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, code, name);
    assert.match(r.json.error.message, message, name);
  }
  const route = await fetch(`${url}/recommendations`);
  assert.equal(route.status, 404);
  assert.equal(((await route.json()) as { error: { code: string } }).error.code, "ENOTFOUND");
});

test("unknownItems 'skip': 200, the unknown ids listed, the answer that of the history without them", async () => {
  const h = historyOf(1);
  const r = await post({ model: 'sas', history: [h[0], 'ghost-1', ...h.slice(1), 'ghost-2'], unknownItems: 'skip' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.unknownItems, ['ghost-1', 'ghost-2']);
  assert.deepEqual(r.json.items, await sas.recommend(h));
});

test('GET /health lists the models', async () => {
  const res = await fetch(`${url}/health`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; models: unknown[]; uptimeSeconds: number };
  assert.equal(body.status, 'ok');
  assert.deepEqual(body.models, [
    { name: 'sas', backbone: 'sasrec', itemTower: 'id', items: data.itemIds.length },
    { name: 'dssm', backbone: 'dssm', itemTower: 'id', items: data.itemIds.length },
  ]);
  assert.ok(body.uptimeSeconds > 0);
});

test('GET /metrics: request counts and the histogram grow by exactly the requests made; the models’ counters too', async () => {
  const before = await scrape();
  const statsBefore = sas.stats();
  for (let u = 0; u < 3; u++) assert.equal((await post({ model: 'sas', history: historyOf(u) })).status, 200);
  assert.equal((await post({ model: 'sas', queries: [{ history: historyOf(0) }, { history: historyOf(1) }] })).status, 200);
  for (const k of [0, 5000]) assert.equal((await post({ model: 'sas', history: historyOf(0), k })).status, 400);
  assert.equal((await post({ model: 'sas', history: ['ghost'] })).status, 422);
  const now = await scrape();
  const delta = (key: string) => (now.get(key) ?? 0) - (before.get(key) ?? 0);
  assert.equal(delta('morec_requests_total{route="/recommend",status="200"}'), 4);
  assert.equal(delta('morec_requests_total{route="/recommend",status="400"}'), 2);
  assert.equal(delta('morec_requests_total{route="/recommend",status="422"}'), 1);
  assert.equal(delta('morec_requests_total{route="/metrics",status="200"}'), 1, 'the first scrape (a scrape counts once answered)');
  assert.equal(delta('morec_request_duration_seconds_count{route="/recommend"}'), 7);
  assert.equal(now.get('morec_request_duration_seconds_bucket{route="/recommend",le="+Inf"}'), now.get('morec_request_duration_seconds_count{route="/recommend"}'));
  let previous = 0;
  for (const le of ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf']) {
    const n = now.get(`morec_request_duration_seconds_bucket{route="/recommend",le="${le}"}`)!;
    assert.ok(n >= previous, `bucket ${le} is cumulative`);
    previous = n;
  }
  assert.ok(delta('morec_request_duration_seconds_sum{route="/recommend"}') > 0);
  const stats = sas.stats();
  assert.equal(delta('morec_recommend_requests_total{model="sas"}'), 5, 'three single queries and a batch of two reached the model');
  assert.equal(now.get('morec_recommend_requests_total{model="sas"}'), stats.requests);
  assert.equal(now.get('morec_native_batches_total{model="sas"}'), stats.batches);
  assert.ok(stats.batches - statsBefore.batches >= 4 && stats.batches - statsBefore.batches <= 5, "one pass per single query, one or two for the batch");
  assert.equal(now.get('morec_largest_batch{model="sas"}'), stats.largestBatch);
  assert.equal(now.get('morec_in_flight{model="sas"}'), 0);
  assert.equal(now.get('morec_in_flight{model="dssm"}'), 0);
});

/** A POST whose body is sent in two halves: the request is in flight at the server until finish(). */
function halfSentRequest(port: number, body: string) {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/recommend', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
  });
  const half = body.length >> 1;
  req.write(body.slice(0, half));
  return { finish: () => req.end(body.slice(half)), response };
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      res.resume();
      resolve(false);
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

/** `morec serve --run sas --port 0` in a child process, once it listens (its first stdout line). */
async function startServe() {
  const child = spawn(process.execPath, [cli, 'serve', '--run', sasDir, '--port', '0', '--threads', '1'], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = { stderr: '' };
  child.stderr.on('data', (c) => (log.stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = await new Promise<{ listening: string; models: { name: string }[] }>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]));
    });
    child.on('exit', () => reject(new Error(`morec serve exited: ${log.stderr}`)));
  });
  return { child, log, exited, listening, port: Number(listening.listening.split(':').pop()) };
}

test('morec serve: SIGTERM answers every request in flight with 200, refuses new connections, closes and exits 0', async () => {
  const { child, log, exited, listening, port } = await startServe();
  assert.match(listening.listening, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(listening.models, [{ name: 'sas', backbone: 'sasrec', itemTower: 'id', items: data.itemIds.length }]);
  const base = listening.listening;
  for (let u = 0; u < 3; u++) assert.equal((await post({ history: historyOf(u) }, undefined, base)).status, 200);

  const inFlight = Array.from({ length: 8 }, (_, i) => halfSentRequest(port, JSON.stringify({ queries: [0, 1, 2].map((j) => ({ history: historyOf(i * 3 + j) })), k: 5 })));
  await new Promise((r) => setTimeout(r, 300)); // the server has read their headers
  const t0 = Date.now();
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await connectionRefused(port), true, 'a new connection is refused while draining');
  for (const r of inFlight) r.finish();
  const answers = await Promise.all(inFlight.map((r) => r.response));
  for (const a of answers) assert.equal(a.status, 200, a.body);
  assert.equal(JSON.parse(answers[0].body).results.length, 3);
  assert.equal(await exited, 0, log.stderr);
  assert.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after SIGTERM`);
  assert.match(log.stderr, /SIGTERM: shutting down after the requests in flight/);
  assert.equal(await connectionRefused(port), true);
});

test('morec serve: a second SIGTERM while a request is in flight exits at once (143)', async () => {
  const { child, exited, port } = await startServe();
  const stuck = halfSentRequest(port, JSON.stringify({ history: historyOf(0) }));
  stuck.response.catch(() => {}); // its connection is cut
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');
  assert.equal(await exited, 143);
});
