// Data-parallel training on c10d (Gloo over loopback, 2 processes): the shards of a global batch are exactly the
// one-process batch (negatives included); after a few optimizer steps the weights of 2 ranks equal those of one
// process training the same global batches (tolerance below), and both ranks hold bit-identical weights;
// validation ranks equal the one-process evaluation; the rendezvous names what is wrong; a killed rank fails the
// job within seconds, naming it; only rank 0 writes; an interrupted data-parallel run resumes to the same result.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model, ModelConfig, prepareDataset } from '../lib';
import { chainWorld } from './helpers';
import { runWorker, WorkerOutput, WorkerSpec } from './dist_worker';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-dist-'));
const cache = path.join(work, 'cache');
process.env.MOREC_CACHE = cache;
const worker = path.join(__dirname, 'dist_worker.js');
const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.js');

/**
 * Weights after data-parallel steps vs one process: the same sums in another order (each rank's mean over its
 * positions, weighted by its share, then summed across ranks), so float32 rounding differs. Measured here:
 * at most ~1e-6 after 10 AdamW steps of lr 3e-3 on weights of magnitude ~1; the bound leaves 20x room.
 */
const WEIGHT_TOLERANCE = 2e-5;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Exit { code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }

function wait(child: ChildProcess): Promise<Exit> {
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (d) => (stderr += d));
  child.stdout?.on('data', (d) => (stdout += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr, stdout })));
}

/** Starts one process per entry of `ranks` (RANK = index unless given) with the torchrun environment. */
function startRanks(args: string[][], env: { port: number; worldSize?: number[]; rank?: number[]; timeoutMs?: number }): Promise<Exit>[] {
  return args.map((a, i) =>
    wait(
      spawn(process.execPath, a, {
        env: {
          ...process.env,
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(env.port),
          WORLD_SIZE: String(env.worldSize?.[i] ?? args.length),
          RANK: String(env.rank?.[i] ?? i),
          TEST_DIST_TIMEOUT_MS: String(env.timeoutMs ?? 30000),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    ),
  );
}

async function twoRanks(spec: WorkerSpec): Promise<[WorkerOutput, WorkerOutput]> {
  const out = path.join(work, `out-${Math.random().toString(36).slice(2)}`);
  const exits = await Promise.all(startRanks([0, 1].map(() => [worker, JSON.stringify({ ...spec, out })]), { port: await freePort() }));
  for (const e of exits) assert.equal(e.code, 0, e.stderr);
  return [0, 1].map((r) => JSON.parse(fs.readFileSync(`${out}.${r}.json`, 'utf8'))) as [WorkerOutput, WorkerOutput];
}

/** Dropout off (its masks are drawn per rank, so they cannot match one process's), as in dist_worker. */
async function compareWith(spec: WorkerSpec, dp: WorkerOutput, other: WorkerOutput): Promise<number> {
  const one = await runWorker(spec);
  const init = await runWorker({ ...spec, epochs: 0 });
  // The weights moved far beyond the tolerance: the comparison is not between two untouched initializations.
  let moved = 0;
  for (const [name, w] of Object.entries(one.params)) for (let i = 0; i < w.length; i++) moved = Math.max(moved, Math.abs(w[i] - init.params[name][i]));
  assert.ok(moved > 100 * WEIGHT_TOLERANCE, `training moved the weights by only ${moved}`);
  return compare(dp, other, one);
}

function compare(dp: WorkerOutput, other: WorkerOutput, one: WorkerOutput) {
  let maxDiff = 0;
  let tensors = 0;
  for (const [name, w] of Object.entries(one.params)) {
    tensors++;
    assert.equal(dp.params[name].length, w.length, name);
    for (let i = 0; i < w.length; i++) maxDiff = Math.max(maxDiff, Math.abs(dp.params[name][i] - w[i]));
    assert.deepEqual(other.params[name], dp.params[name], `rank 1's ${name} differs from rank 0's`);
  }
  assert.ok(tensors >= 2);
  assert.ok(maxDiff <= WEIGHT_TOLERANCE, `max |weight difference| ${maxDiff} > ${WEIGHT_TOLERANCE}`);
  for (let e = 0; e < one.losses.length; e++) assert.ok(Math.abs(dp.losses[e] - one.losses[e]) <= 1e-5 * one.losses[e], `epoch ${e} loss ${dp.losses[e]} vs ${one.losses[e]}`);
  assert.deepEqual(dp.ranks, one.ranks, 'validation ranks differ from the one-process evaluation');
  assert.deepEqual(other.ranks, dp.ranks);
  return maxDiff;
}

test('each rank trains its contiguous share of every global batch; the shards are the one-process batch, negatives included', () => {
  const seqs = chainWorld(150, 60, 2);
  for (const backbone of ['sasrec', 'dssm'] as const) {
    const model = Model.create({ backbone, numItems: 60, numUsers: seqs.users, d: 8, maxLen: 8, seed: 1, threads: 1 });
    // 150 users in batches of 7 rows: the last batch has 3 rows, fewer than 4 ranks (one rank gets none).
    const options = { epoch: 3, batchSize: backbone === 'sasrec' ? 7 : 50 };
    const one = model.epochBatches(seqs, options);
    for (const worldSize of [2, 3, 4]) {
      const shards = Array.from({ length: worldSize }, (_, rank) => model.epochBatches(seqs, { ...options, rank, worldSize }));
      const batches = one.batchOffsets.length - 1;
      for (const s of shards) assert.equal(s.batchOffsets.length - 1, batches);
      let empty = 0;
      for (let b = 0; b < batches; b++) {
        const joined = { users: [] as number[], positives: [] as number[], negatives: [] as number[] };
        for (const s of shards) {
          const [from, to] = [s.batchOffsets[b], s.batchOffsets[b + 1]];
          if (from === to) empty++;
          for (const k of ['users', 'positives', 'negatives'] as const) joined[k].push(...s[k].subarray(from, to));
        }
        const [from, to] = [one.batchOffsets[b], one.batchOffsets[b + 1]];
        for (const k of ['users', 'positives', 'negatives'] as const) assert.deepEqual(joined[k], Array.from(one[k].subarray(from, to)), `${backbone} world ${worldSize} batch ${b} ${k}`);
      }
      if (backbone === 'sasrec' && worldSize === 4) assert.ok(empty > 0, 'a rank with no row of the last batch was exercised');
    }
  }
});

test('2 processes (Gloo, loopback) train SASRec IDRec to the weights and validation ranks of one process on the same global batches', async () => {
  const spec: WorkerSpec = { tower: 'id', epochs: 2, maxBatches: 5, batchSize: 32 };
  const [dp, other] = await twoRanks(spec);
  await compareWith(spec, dp, other);
  // Gradients were summed in buckets started by autograd hooks during backward.
  const a = dp.allreduce as { bytesPerStep: number; buckets: number; startedInBackward: number };
  assert.ok(a.bytesPerStep > 0 && a.buckets >= 1, JSON.stringify(a));
  assert.equal(a.startedInBackward, 5 * a.buckets, 'every bucket of every step started before backward ended');
});

test('data-parallel with gradient accumulation (2 batches per step) and DSSM pairs equals one process', async () => {
  for (const spec of [
    { tower: 'id', epochs: 2, maxBatches: 6, batchSize: 16, gradAccum: 2 },
    { tower: 'id', epochs: 2, maxBatches: 5, batchSize: 64, backbone: 'dssm' },
  ] as WorkerSpec[]) {
    const [dp, other] = await twoRanks(spec);
    await compareWith(spec, dp, other);
  }
});

test('2 processes train a text MoRec (bert-tiny, end to end) to the weights and validation ranks of one process', async () => {
  const spec: WorkerSpec = { tower: 'text', epochs: 2, maxBatches: 4, batchSize: 32 };
  await runWorker({ ...spec, epochs: 0 }); // the data set cached before two processes read it
  const [dp, other] = await twoRanks(spec);
  await compareWith(spec, dp, other);
  assert.ok(Object.keys(dp.params).some((n) => n.includes('encoder')), 'the encoder is among the compared weights');
  // The evaluation's item table was encoded once across the ranks: each encoded about half of it (batches of 16
  // items, every other batch), then had it whole; and the validation ranks above equal one process's exactly.
  for (const out of [dp, other]) {
    const n = out.tableProgress[out.tableProgress.length - 1];
    const beforeGather = out.tableProgress.filter((d) => d < n);
    assert.ok(beforeGather.length >= 1 && Math.max(...beforeGather) <= Math.ceil(n / 32) * 16, `table progress ${out.tableProgress}`);
  }
  // Gradient checkpointing runs a re-entrant backward inside the encoder: still the same sums, still overlapped.
  const ckpt = { ...spec, checkpointing: true };
  const [dpc, otherc] = await twoRanks(ckpt);
  await compareWith(ckpt, dpc, otherc);
  const a = dpc.allreduce as { buckets: number; startedInBackward: number };
  assert.equal(a.startedInBackward, 4 * a.buckets, JSON.stringify(a));
});

test('image MoRec (BatchNorm): the ranks average their running statistics after each epoch and end bit-identical', async () => {
  const spec: WorkerSpec = { tower: 'image', epochs: 2, maxBatches: 4, batchSize: 32 };
  const [a, b] = await twoRanks(spec);
  const stats = Object.keys(a.params).filter((n) => /running_(mean|var)$/.test(n));
  assert.ok(stats.length > 0, 'the model has BatchNorm statistics');
  for (const [name, w] of Object.entries(a.params)) assert.deepEqual(b.params[name], w, `rank 1's ${name} differs from rank 0's`);
  assert.deepEqual(b.ranks, a.ranks);
  // The statistics moved from their initial values (0 and 1).
  const init = await runWorker({ ...spec, epochs: 0 });
  assert.ok(stats.some((n) => a.params[n].some((v, i) => Math.abs(v - init.params[n][i]) > 1e-3)));
});

test('the rendezvous names what is wrong: a different WORLD_SIZE, a rank that never comes, an unreachable master', async () => {
  const spec = JSON.stringify({ tower: 'id', epochs: 1, maxBatches: 1, batchSize: 32 });
  let port = await freePort();
  const mismatch = await Promise.all(startRanks([[worker, spec], [worker, spec]], { port, worldSize: [2, 3], timeoutMs: 10000 }));
  for (const e of mismatch) {
    assert.equal(e.code, 1);
    assert.match(e.stderr, /EDIST: .*WORLD_SIZE differs between ranks: rank 0 has 2, rank 1 has 3/);
  }
  port = await freePort();
  let t0 = Date.now();
  const [alone] = await Promise.all(startRanks([[worker, spec]], { port, worldSize: [2], timeoutMs: 1500 }));
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /EDIST: rank 0 of 2 \(master 127\.0\.0\.1:\d+\): the rendezvous timed out after 1\.5 s: rank\(s\) 1 of 2 did not join/);
  assert.ok(Date.now() - t0 < 15000);
  port = await freePort();
  t0 = Date.now();
  const [lost] = await Promise.all(startRanks([[worker, spec]], { port, worldSize: [2], rank: [1], timeoutMs: 1500 }));
  assert.equal(lost.code, 1);
  assert.match(lost.stderr, /EDIST: rank 1 of 2 \(master 127\.0\.0\.1:\d+\): cannot reach the master within 1\.5 s/);
  assert.ok(Date.now() - t0 < 15000);
});

test('morec train under an external launcher: only rank 0 writes its run folder, and the results equal one process', async () => {
  const common = ['train', '--dataset', 'synthetic', '--scale', '0.3', '--epochs', '3', '--dropout', '0', '--name', 'r', '-q'];
  await prepareDataset('synthetic', { maxLen: 20, minSeqLen: 5, synthetic: { seed: 42, scale: 0.3 } });
  const [a, b] = await Promise.all(startRanks([[cli, ...common, '--runs-dir', path.join(work, 'rank0')], [cli, ...common, '--runs-dir', path.join(work, 'rank1')]], { port: await freePort() }));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(fs.existsSync(path.join(work, 'rank1')), false, 'rank 1 wrote a run folder');
  assert.equal(b.stdout, '', 'rank 1 printed results');
  const dpDir = path.join(work, 'rank0', 'r');
  assert.deepEqual(fs.readdirSync(dpDir).sort(), ['checkpoint', 'config.json', 'last', 'metrics.jsonl', 'results.json']);
  const one = spawnSync(process.execPath, [cli, ...common, '--runs-dir', path.join(work, 'one'), '--threads', '1'], { encoding: 'utf8' });
  assert.equal(one.status, 0, one.stderr);
  const lines = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const dpLines = lines(dpDir);
  const oneLines = lines(path.join(work, 'one', 'r'));
  assert.equal(dpLines.length, 3, 'one metrics line per epoch (rank 0 alone logs)');
  for (let e = 0; e < 3; e++) {
    assert.equal(dpLines[e]['valid HR@10'], oneLines[e]['valid HR@10']);
    assert.equal(dpLines[e]['valid NDCG@10'], oneLines[e]['valid NDCG@10']);
    assert.ok(Math.abs(dpLines[e].loss - oneLines[e].loss) < 1e-5, `${dpLines[e].loss} vs ${oneLines[e].loss}`);
  }
  const results = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  assert.deepEqual(results(dpDir).test, results(path.join(work, 'one', 'r')).test);
});

test('morec train --nproc 2: a rank killed mid-epoch fails the job within seconds, naming the rank', async () => {
  const child = spawn(process.execPath, [cli, 'train', '--nproc', '2', '--dataset', 'synthetic', '--scale', '2', '--epochs', '100', '--name', 'k', '--runs-dir', path.join(work, 'kill')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = wait(child);
  // Wait until training runs (the first epoch's line), then SIGKILL rank 1.
  const metricsFile = path.join(work, 'kill', 'k', 'metrics.jsonl');
  for (let i = 0; i < 600 && !(fs.existsSync(metricsFile) && fs.readFileSync(metricsFile, 'utf8').length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  const ranks = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
  const rank1 = ranks.find((pid) => fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
  assert.ok(rank1, `rank 1 among ${ranks}`);
  const t0 = Date.now();
  process.kill(rank1!, 'SIGKILL');
  const exit = await done;
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(seconds < 10, `the job took ${seconds} s to fail`);
  assert.equal(exit.code, 137);
  assert.match(exit.stderr, new RegExp(`morec: rank 1 \\(pid ${rank1}\\) was killed by SIGKILL`));
  for (const pid of ranks) assert.throws(() => process.kill(pid, 0), `rank process ${pid} still runs`);
});

test('an interrupted data-parallel run resumes (--resume --nproc 2) to the uninterrupted run\'s results', async () => {
  const args = (dir: string) => ['train', '--nproc', '2', '--dataset', 'synthetic', '--scale', '0.5', '--epochs', '6', '--patience', '100', '--name', 'res', '--runs-dir', dir, '-q'];
  const full = spawnSync(process.execPath, [cli, ...args(path.join(work, 'full'))], { encoding: 'utf8' });
  assert.equal(full.status, 0, full.stderr);
  const dir = path.join(work, 'part');
  const child = spawn(process.execPath, [cli, ...args(dir)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = wait(child);
  const metricsFile = path.join(dir, 'res', 'metrics.jsonl');
  for (let i = 0; i < 600 && !(fs.existsSync(metricsFile) && fs.readFileSync(metricsFile, 'utf8').split('\n').length > 3); i++) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  const stopped = await done;
  assert.notEqual(stopped.code, 0);
  assert.ok(!fs.existsSync(path.join(dir, 'res', 'results.json')), 'the run finished before it was interrupted');
  const resumed = spawnSync(process.execPath, [cli, 'train', '--nproc', '2', '--name', 'res', '--runs-dir', dir, '--resume', '-q'], { encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  const read = (d: string, f: string) => fs.readFileSync(path.join(d, 'res', f), 'utf8');
  assert.equal(read(dir, 'metrics.jsonl').split('\n').map((l) => l.replace(/"(train|eval)Seconds":[0-9.e-]+/g, '')).join('\n'), read(path.join(work, 'full'), 'metrics.jsonl').split('\n').map((l) => l.replace(/"(train|eval)Seconds":[0-9.e-]+/g, '')).join('\n'));
  assert.deepEqual(JSON.parse(read(dir, 'results.json')).test, JSON.parse(read(path.join(work, 'full'), 'results.json')).test);
});

test('a model joined to a group of one process is unchanged (joinGroup is a no-op for WORLD_SIZE 1)', async () => {
  const seqs = chainWorld(200, 50, 4);
  const config: ModelConfig = { backbone: 'sasrec', numItems: 50, d: 16, maxLen: 8, seed: 2, threads: 1 };
  const a = Model.create(config);
  const b = Model.create(config);
  const { ProcessGroup } = await import('../lib');
  const group = await ProcessGroup.connect({ masterAddr: '127.0.0.1', masterPort: await freePort(), worldSize: 1, rank: 0 });
  await b.joinGroup(group);
  for (let epoch = 0; epoch < 2; epoch++) {
    const ra = await a.trainEpoch(seqs, { epoch, batchSize: 32 });
    const rb = await b.trainEpoch(seqs, { epoch, batchSize: 32 });
    assert.equal(rb.loss, ra.loss);
    assert.equal(rb.allreduce, undefined);
  }
  for (const [name, t] of Object.entries(a.parameters())) assert.deepEqual(b.parameters()[name].data, t.data, name);
  group.close();
});

test('node train.js --nproc 2: the study runs every cell data-parallel; rank 0 alone writes it and prints the table', () => {
  const trainJs = path.join(__dirname, '..', '..', 'train.js');
  const out = path.join(work, 'study');
  const args = [trainJs, '--nproc', '2', '--models', 'sasrec-id,sasrec-text', '--scale', '0.3', '--epochs', '2', '--out', out, '-q'];
  const first = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout.split('| model | backbone').length - 1, 1, `one table:\n${first.stdout}`);
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(rows.map((r: { model: string }) => r.model), ['sasrec-id', 'sasrec-text']);
  for (const r of rows) assert.equal(r.epochs, 2);
  for (const cell of ['sasrec-id', 'sasrec-text']) {
    const lines = fs.readFileSync(path.join(out, 'cells', 'synthetic', cell, 'default', 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 2, `${cell}: one metrics line per epoch`);
  }
  // Rerun: both ranks reuse the finished cells (the plan rank 0 shares) and the same table comes out.
  const again = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, first.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).map((r: { 'HR@10': number }) => r['HR@10']), rows.map((r: { 'HR@10': number }) => r['HR@10']));
});
