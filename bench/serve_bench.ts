/**
 * npm run bench:serve: recommend latency and throughput of SASRec IDRec on amazon-toys (11.9k items), with
 * micro-batching on and off, at concurrency 1, 16 and 256:
 *  (a) in-process: N workers each awaiting Recommender.recommend() in a loop (real users' histories, k 10);
 *  (b) over HTTP on loopback: `morec serve` in a child process, loaded by autocannon (N connections, POST
 *      /recommend bodies cycling through the users' histories).
 * p50/p99 from per-call timings, requests/s, and queries per native pass (Recommender.stats(), or the
 * service's /metrics). On and off alternate, `--reps` stretches each (default 3 of 2 s), so that other load on
 * the machine falls on both alike. Prints markdown tables and writes bench/results/serve.json.
 * Trains the run first (L 50, d 64, 2 blocks, 2 heads; --epochs, default 3; reused when it exists), or
 * serves the run folder given by --run. Options: --seconds S per cell (default 6), --reps N, --threads N,
 * --concurrency 1,16,256.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareDataset, Recommender, trainRun, TrainConfig } from '../lib';
import { prepareOptionsOf, readJson, RunConfigFile } from '../lib/run';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const toys = path.join(root, '..', 'shared', 'data', 'amazon-toys');
const seconds = Number(arg('seconds', '6'));
const reps = Number(arg('reps', '3'));
const epochs = Number(arg('epochs', '3'));
const threads = process.argv.includes('--threads') ? Number(arg('threads', '2')) : undefined;
const concurrencies = arg('concurrency', '1,16,256').split(',').map(Number);
const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');

interface Row {
  path: 'in-process' | 'HTTP';
  batching: boolean;
  concurrency: number;
  p50Ms: number;
  p99Ms: number;
  requestsPerSecond: number;
  queriesPerPass: number;
  requests: number;
  errors: number;
}

/** One timed stretch of load: each answered call's latency, and the model's counters over it. */
interface Sample {
  latencies: number[];
  seconds: number;
  queries: number;
  passes: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function summarize(where: Row['path'], batching: boolean, concurrency: number, samples: Sample[]): Row {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const sum = (f: (s: Sample) => number) => samples.reduce((t, s) => t + f(s), 0);
  return {
    path: where,
    batching,
    concurrency,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    requestsPerSecond: latencies.length / sum((s) => s.seconds),
    queriesPerPass: sum((s) => s.queries) / Math.max(1, sum((s) => s.passes)),
    requests: latencies.length,
    errors: sum((s) => s.errors),
  };
}

/** The run to serve: --run, or SASRec IDRec trained on amazon-toys (reused when it is already there). */
async function prepareRun(): Promise<string> {
  const given = arg('run', '');
  if (given) return path.resolve(given);
  const dir = path.join(root, 'runs', `bench-serve-amazon-toys-e${epochs}`);
  const cfg: TrainConfig = {
    dataset: toys, maxLen: 50, minSeqLen: 5, seed: 42, scale: 1,
    model: { backbone: 'sasrec', itemTower: 'id', d: 64, blocks: 2, heads: 2, dropout: 0.1 },
    train: { batchSize: 128, lr: 1e-3, weightDecay: 0.1, epochs, patience: epochs, gradAccum: 1 },
    ...(threads ? { threads } : {}),
  };
  console.error(`training ${dir} (${epochs} epochs; reused if it is there)`);
  const t0 = performance.now();
  const out = await trainRun(dir, cfg, { mode: 'auto' });
  console.error(`run ${out.how} in ${((performance.now() - t0) / 1000).toFixed(1)} s: test HR@10 ${out.results.test['HR@10'].toFixed(4)}`);
  return dir;
}

/** N workers awaiting recommend() in a loop for `secs` seconds. */
async function measureInProcess(rec: Recommender, histories: string[][], concurrency: number, secs: number): Promise<Sample> {
  let next = 0;
  const latencies: number[] = [];
  let errors = 0;
  const before = rec.stats();
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const history = histories[next++ % histories.length];
        const s = performance.now();
        try {
          await rec.recommend(history, { k: 10 });
          latencies.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const after = rec.stats();
  return { latencies, seconds: (performance.now() - t0) / 1000, queries: after.requests - before.requests, passes: after.batches - before.batches, errors };
}

/** `morec serve` in a child process; resolves its URL once it listens. */
function startService(run: string, batching: boolean): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const args = [cli, 'serve', '--run', run, '--port', '0', '--quiet', batching ? '--batching' : '--no-batching', ...(threads ? ['--threads', String(threads)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (!out.includes('\n')) return;
      const url = JSON.parse(out.split('\n')[0]).listening as string;
      resolve({ url, stop: () => (child.kill('SIGTERM'), exited) });
    });
    exited.then((code) => reject(new Error(`morec serve exited with ${code} before listening`)));
  });
}

/** The service's per-model counters from /metrics: queries answered and native passes. */
async function modelCounters(url: string): Promise<{ requests: number; batches: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(/\S+ (\S+)$/.exec(text.split('\n').find((l) => l.startsWith(`${name}{`)) ?? '')?.[1] ?? NaN);
  return { requests: value('morec_recommend_requests_total'), batches: value('morec_native_batches_total') };
}

/** autocannon with N connections for `secs` seconds, POST /recommend bodies cycling through the histories. */
async function measureHttp(url: string, bodies: string[], concurrency: number, secs: number): Promise<Sample> {
  const autocannon = require('autocannon');
  let next = 0;
  const before = await modelCounters(url);
  const instance = autocannon({
    url: `${url}/recommend`,
    connections: concurrency,
    duration: secs,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: bodies[next++ % bodies.length] }),
      },
    ],
  });
  // autocannon's own histogram keeps whole milliseconds; its response events carry the exact times.
  const latencies: number[] = [];
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => status === 200 && latencies.push(ms));
  const r = await instance;
  const after = await modelCounters(url);
  return { latencies, seconds: r.duration, queries: after.requests - before.requests, passes: after.batches - before.batches, errors: r.errors + r.non2xx };
}

async function main(): Promise<void> {
  const run = await prepareRun();
  const runConfig = readJson<RunConfigFile>(path.join(run, 'config.json'), "the run's config");
  const data = await prepareDataset(runConfig.datasetPath ?? runConfig.dataset, prepareOptionsOf(runConfig));
  const s = data.sequences;
  const histories = Array.from({ length: s.users }, (_, u) => Array.from(s.sequence(u), (i) => data.itemIds[i - 1]));
  const bodies = histories.map((history) => JSON.stringify({ history, k: 10 }));
  const info = `${data.name}: ${s.users} users, ${s.numItems} items; SASRec d ${runConfig.model.d}, L ${runConfig.maxLen}; k 10; ${os.cpus().length} cores (${os.cpus()[0]?.model}); ${seconds} s per cell in ${reps} stretches alternating on and off, after 1 s of warm-up`;
  console.error(info);
  const rows: Row[] = [];
  // On and off are measured in alternation (reps times each, seconds / reps at a time), so that load from
  // elsewhere on the machine falls on both alike.
  const alternate = async (where: Row['path'], measure: (batching: boolean, c: number, secs: number) => Promise<Sample>) => {
    for (const c of concurrencies) {
      const samples = new Map<boolean, Sample[]>([[true, []], [false, []]]);
      for (const batching of [true, false]) await measure(batching, c, 1); // warm-up
      for (let rep = 0; rep < reps; rep++) for (const batching of [true, false]) samples.get(batching)!.push(await measure(batching, c, seconds / reps));
      for (const batching of [true, false]) {
        const row = summarize(where, batching, c, samples.get(batching)!);
        console.error(JSON.stringify(row));
        rows.push(row);
      }
    }
  };

  const recommenders = new Map<boolean, Recommender>();
  for (const batching of [true, false]) recommenders.set(batching, await Recommender.load(run, { batching, ...(threads ? { threads } : {}) }));
  // How far a request scored in a pass of many is from the same request scored alone (float summation order).
  const sample = histories.slice(0, 256);
  const alone: { item: string; score: number }[][] = [];
  for (const h of sample) alone.push(await recommenders.get(false)!.recommend(h, { k: 10 }));
  const together = await Promise.all(sample.map((h) => recommenders.get(true)!.recommend(h, { k: 10 })));
  let maxDiff = 0;
  let sameLists = 0;
  together.forEach((t, q) => {
    t.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x.score - alone[q][i].score) / Math.max(1, Math.abs(alone[q][i].score)))));
    sameLists += +t.every((x, i) => x.item === alone[q][i].item);
  });
  console.log(`batched vs alone (256 queries in one burst): largest relative score difference ${maxDiff.toExponential(1)}, identical top-10 lists ${sameLists}/256`);
  await alternate('in-process', (batching, c, secs) => measureInProcess(recommenders.get(batching)!, histories, c, secs));
  for (const r of recommenders.values()) await r.close();

  const services = new Map<boolean, Awaited<ReturnType<typeof startService>>>();
  for (const batching of [true, false]) services.set(batching, await startService(run, batching));
  await alternate('HTTP', (batching, c, secs) => measureHttp(services.get(batching)!.url, bodies, c, secs));
  for (const service of services.values()) {
    const code = await service.stop();
    if (code !== 0) throw new Error(`morec serve exited with ${code} on SIGTERM`);
  }

  console.log(`\n${info}\n`);
  console.log('| path | micro-batching | concurrency | p50 ms | p99 ms | requests/s | queries per native pass | errors |\n|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(`| ${r.path} | ${r.batching ? 'on' : 'off'} | ${r.concurrency} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.requestsPerSecond.toFixed(0)} | ${r.queriesPerPass.toFixed(1)} | ${r.errors} |`);
  const ratios = [];
  console.log('\n| path | concurrency | requests/s on / off | p50 off / on | p99 off / on |\n|---|---|---|---|---|');
  for (const p of ['in-process', 'HTTP'] as const)
    for (const c of concurrencies) {
      const on = rows.find((r) => r.path === p && r.batching && r.concurrency === c)!;
      const off = rows.find((r) => r.path === p && !r.batching && r.concurrency === c)!;
      const ratio = { path: p, concurrency: c, throughput: on.requestsPerSecond / off.requestsPerSecond, p50: off.p50Ms / on.p50Ms, p99: off.p99Ms / on.p99Ms };
      ratios.push(ratio);
      console.log(`| ${p} | ${c} | ${ratio.throughput.toFixed(2)}x | ${ratio.p50.toFixed(2)}x | ${ratio.p99.toFixed(2)}x |`);
    }
  const out = path.join(root, 'bench', 'results', 'serve.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), setup: info, run, rows, ratios }, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(root, out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
