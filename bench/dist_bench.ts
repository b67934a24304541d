/**
 * Data-parallel benchmark (npm run bench:dist): one training epoch with 1 process x 2 threads against 2
 * processes x 1 thread (c10d Gloo over loopback) on this machine, for SASRec IDRec (d 64, L 20, batch 128) and a
 * text MoRec (SASRec d 64 over bert-mini from scratch, 30 tokens, batch 64) on amazon-scientific. Reports
 * sequences/s of each, their ratio, and the gradient all-reduce per optimizer step (bytes, time waiting after
 * backward, time in the reducer). Rounds alternate 1-process and 2-process epochs; medians are reported.
 * Options: --rounds N (3), --epochs-per-round N (1), --data DIR, --vocab DIR, --text-encoder NAME.
 * Internal: --rank-of <json> runs one rank (spawned by this script).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model, ModelConfig, prepareDataset, prepareTextTower, ProcessGroup, setThreads } from '../lib';

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const shared = path.join(root, '..', 'shared');
const dataDir = path.resolve(arg('data', path.join(shared, 'data', 'amazon-scientific')));
const vocab = path.resolve(arg('vocab', path.join(shared, 'vocab', 'bert-base-uncased')));
const rounds = Number(arg('rounds', '3'));
const encoder = arg('text-encoder', 'bert-mini');

/** maxBatches: the text epoch is cut to its first batches (a whole one takes minutes on 2 cores). */
interface Case { name: 'sasrec-id' | 'sasrec-text'; batchSize: number; maxBatches: number }
const CASES: Case[] = [
  { name: 'sasrec-id', batchSize: 128, maxBatches: 0 },
  { name: 'sasrec-text', batchSize: 64, maxBatches: Number(arg('text-batches', '12')) },
];

interface EpochFigures {
  seqPerSec: number;
  seconds: number;
  steps: number;
  bytesPerStep?: number;
  /** After backward: waiting for the buckets (communication not hidden, plus the other rank's lag). */
  waitMsPerStep?: number;
  reduceMsPerStep?: number;
  startedInBackward?: number;
  buckets?: number;
  /** An all-reduce of one step's gradient bytes alone, both ranks idle and lined up by a barrier. */
  pureAllreduceMs?: number;
}

async function build(c: Case, threads: number) {
  const data = await prepareDataset(dataDir, { minSeqLen: 5, maxLen: 20 });
  const base: ModelConfig = { backbone: 'sasrec', numItems: data.sequences.numItems, d: 64, blocks: 2, heads: 2, maxLen: 20, dropout: 0.1, seed: 1, threads };
  if (c.name === 'sasrec-id') return { seqs: data.sequences, model: Model.create(base) };
  const text = prepareTextTower(data, { encoder, tokenizer: vocab, maxTokens: 30 });
  return { seqs: data.sequences, model: Model.create({ ...base, itemTower: 'text', text: text.text as ModelConfig['text'] }, { items: text.items }) };
}

/** One epoch (after a warm-up of a few batches), alone or as one rank of `group`. */
async function epoch(c: Case, threads: number, group?: ProcessGroup): Promise<EpochFigures> {
  const { seqs, model } = await build(c, threads);
  if (group) await model.joinGroup(group);
  await model.trainEpoch(seqs, { epoch: 0, batchSize: c.batchSize, maxBatches: 3 });
  const r = await model.trainEpoch(seqs, { epoch: 1, batchSize: c.batchSize, ...(c.maxBatches ? { maxBatches: c.maxBatches } : {}) });
  const a = r.allreduce;
  let pureAllreduceMs: number | undefined;
  if (group && a) {
    const values = new Float64Array(Math.ceil(a.bytesPerStep / 8));
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      await group.barrier();
      const t0 = process.hrtime.bigint();
      await group.allreduce(values);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    pureAllreduceMs = median(times);
  }
  return {
    seqPerSec: r.sequences / r.seconds,
    seconds: r.seconds,
    steps: r.steps,
    ...(a ? { bytesPerStep: a.bytesPerStep, waitMsPerStep: (1000 * a.waitSeconds) / r.steps, reduceMsPerStep: (1000 * a.seconds) / r.steps, startedInBackward: a.startedInBackward / r.steps, buckets: a.buckets, pureAllreduceMs } : {}),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function twoProcesses(c: Case): Promise<EpochFigures> {
  const port = await freePort();
  const out = path.join(os.tmpdir(), `morec-dist-bench-${process.pid}-${port}`);
  const runs = [0, 1].map(
    (rank) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [__filename, '--rank-of', JSON.stringify({ c, out }), ...process.argv.slice(2)], {
          env: { ...process.env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: '2', RANK: String(rank), MOREC_THREADS: '1' },
          stdio: ['ignore', 'inherit', 'inherit'],
        });
        child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${rank} exited with ${code}`))));
      }),
  );
  await Promise.all(runs);
  const figures = JSON.parse(fs.readFileSync(out, 'utf8')) as EpochFigures;
  fs.rmSync(out, { force: true });
  return figures;
}

async function main() {
  const rankOf = arg('rank-of', '');
  if (rankOf) {
    const { c, out } = JSON.parse(rankOf) as { c: Case; out: string };
    setThreads(1);
    const group = (await ProcessGroup.fromEnv())!;
    const f = await epoch(c, 1, group);
    if (group.rank === 0) fs.writeFileSync(out, JSON.stringify(f));
    group.close();
    return;
  }
  console.log(`data-parallel epoch on ${os.cpus().length} cores, ${path.basename(dataDir)}; ${rounds} rounds alternating 1 process x 2 threads and 2 processes x 1 thread (Gloo, loopback)`);
  const rows: string[] = [];
  for (const c of CASES) {
    const one: EpochFigures[] = [];
    const two: EpochFigures[] = [];
    for (let r = 0; r < rounds; r++) {
      one.push(await epoch(c, 2));
      two.push(await twoProcesses(c));
      console.log(`  ${c.name} round ${r + 1}: 1x2 ${one[r].seqPerSec.toFixed(0)} seq/s, 2x1 ${two[r].seqPerSec.toFixed(0)} seq/s (reducer ${two[r].reduceMsPerStep!.toFixed(2)} ms/step, waiting ${two[r].waitMsPerStep!.toFixed(2)} ms; the all-reduce alone ${two[r].pureAllreduceMs!.toFixed(2)} ms)`);
    }
    const s1 = median(one.map((f) => f.seqPerSec));
    const s2 = median(two.map((f) => f.seqPerSec));
    const t = two[0];
    rows.push(
      `| ${c.name} | ${c.batchSize} | ${s1.toFixed(0)} | ${s2.toFixed(0)} | ${(s2 / s1).toFixed(2)}x | ${(t.bytesPerStep! / 2 ** 20).toFixed(2)} MiB in ${t.buckets} buckets | ${median(two.map((f) => f.pureAllreduceMs!)).toFixed(2)} | ${median(two.map((f) => f.reduceMsPerStep!)).toFixed(2)} | ${median(two.map((f) => f.waitMsPerStep!)).toFixed(2)} | ${t.steps} |`,
    );
  }
  console.log('\n| model | batch | 1 proc x 2 threads seq/s | 2 procs x 1 thread seq/s | ratio | gradients per step | all-reduce alone ms | reducer ms/step in training | of which waiting | steps |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
