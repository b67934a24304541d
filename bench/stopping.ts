/**
 * Early-stopping rules, measured: SASRec / DSSM IDRec trained for a fixed number of epochs with validation
 * AND test evaluated after every epoch (the test numbers are only read afterwards, to score each rule). Each
 * rule then replays the validation curve — which epoch it would have stopped at, which epoch it would have
 * kept — and is scored by the test HR@10 of the kept epoch and the epochs it cost.
 *   node dist/bench/stopping.js --data ../shared/data/amazon-toys --backbone sasrec --epochs 150 --max-len 50
 * Writes runs/stopping/<data>-<backbone>.json (the curves) and prints a table of rules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { metrics, Model, prepareDataset } from '../lib';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

interface Point {
  epoch: number;
  valid: number;
  test: number;
  testNdcg: number;
}

/** A stopping rule over a validation curve: returns [stopEpoch, keptEpoch] (1-based). */
type Rule = (valid: number[]) => [number, number];

/**
 * Stop after max(patience, ⌈fraction × epochs up to the best⌉) epochs without improvement (fraction 0: a fixed
 * patience), never before minEpochs; keep the best epoch.
 */
function patienceRule(patience: number, fraction = 0, minEpochs = 0): Rule {
  return (valid) => {
    let best = -1;
    let bestAt = 0;
    for (let e = 0; e < valid.length; e++) {
      if (valid[e] > best) {
        best = valid[e];
        bestAt = e;
      } else if (e - bestAt >= Math.max(patience, Math.ceil(fraction * (bestAt + 1))) && e + 1 >= minEpochs) return [e + 1, bestAt + 1];
    }
    return [valid.length, bestAt + 1];
  };
}

/** Patience on an exponential moving average of the validation metric; keeps the best raw epoch seen. */
function smoothedRule(alpha: number, patience: number): Rule {
  return (valid) => {
    let ema = valid[0];
    let bestEma = -1;
    let bestEmaAt = 0;
    let best = -1;
    let bestAt = 0;
    for (let e = 0; e < valid.length; e++) {
      ema = e === 0 ? valid[0] : alpha * valid[e] + (1 - alpha) * ema;
      if (valid[e] > best) {
        best = valid[e];
        bestAt = e;
      }
      if (ema > bestEma) {
        bestEma = ema;
        bestEmaAt = e;
      } else if (e - bestEmaAt >= patience) return [e + 1, bestAt + 1];
    }
    return [valid.length, bestAt + 1];
  };
}

async function main(): Promise<void> {
  const dataPath = path.resolve(arg('data', path.join(__dirname, '..', '..', '..', 'shared', 'data', 'amazon-scientific')));
  const backbone = arg('backbone', 'sasrec') as 'sasrec' | 'dssm';
  const epochs = Number(arg('epochs', '150'));
  const maxLen = Number(arg('max-len', '20'));
  const threads = Number(arg('threads', '2'));
  const outDir = path.resolve(arg('out', 'runs/stopping'));
  const data = await prepareDataset(dataPath, { maxLen, minSeqLen: 5 });
  const seqs = data.sequences;
  const name = `${data.name}-${backbone}-L${maxLen}`;
  const file = path.join(outDir, `${name}.json`);
  let curve: Point[] = [];
  if (fs.existsSync(file) && JSON.parse(fs.readFileSync(file, 'utf8')).epochs === epochs) curve = JSON.parse(fs.readFileSync(file, 'utf8')).curve;
  else {
    const model = Model.create({ backbone, numItems: seqs.numItems, numUsers: seqs.users, d: 64, maxLen, threads, seed: 42, ...(backbone === 'sasrec' ? { blocks: 2, heads: 2, dropout: 0.1 } : {}) });
    for (let e = 0; e < epochs; e++) {
      await model.trainEpoch(seqs, { epoch: e, batchSize: 128, lr: 1e-3, weightDecay: 0.1 });
      const valid = metrics(await model.evaluate(seqs, { split: 'valid' }));
      const test = metrics(await model.evaluate(seqs, { split: 'test' }));
      curve.push({ epoch: e + 1, valid: valid['HR@10'], test: test['HR@10'], testNdcg: test['NDCG@10'] });
      if ((e + 1) % 10 === 0) console.error(`${name}: epoch ${e + 1} valid ${valid['HR@10'].toFixed(4)} test ${test['HR@10'].toFixed(4)}`);
    }
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ data: data.name, backbone, maxLen, epochs, curve }, null, 1));
  }
  const valid = curve.map((p) => p.valid);
  const oracle = curve.reduce((a, p) => (p.test > a.test ? p : a), curve[0]);
  const rules: [string, Rule][] = [
    ['patience 3', patienceRule(3)],
    ['patience 5', patienceRule(5)],
    ['patience 7 (paper SASRec)', patienceRule(7)],
    ['patience 10', patienceRule(10)],
    ['patience 15', patienceRule(15)],
    ['patience 20', patienceRule(20)],
    ['patience 5, min 30 epochs', patienceRule(5, 0, 30)],
    ['patience 10, min 30 epochs', patienceRule(10, 0, 30)],
    ['patience max(5, 25% of best epoch)', patienceRule(5, 0.25)],
    ['patience max(10, 25% of best epoch)', patienceRule(10, 0.25)],
    ['patience max(10, 50% of best epoch)', patienceRule(10, 0.5)],
    ['EMA 0.3, patience 5', smoothedRule(0.3, 5)],
    ['EMA 0.3, patience 10', smoothedRule(0.3, 10)],
    [`none (all ${epochs})`, () => [valid.length, valid.indexOf(Math.max(...valid)) + 1]],
  ];
  console.log(`\n${name}: ${seqs.users} users, ${seqs.numItems} items; best test HR@10 of any epoch ${oracle.test.toFixed(4)} (epoch ${oracle.epoch})\n`);
  console.log('| rule | stops at | keeps epoch | test HR@10 | test NDCG@10 |');
  console.log('|---|---|---|---|---|');
  for (const [label, rule] of rules) {
    const [stop, kept] = rule(valid);
    const p = curve[kept - 1];
    console.log(`| ${label} | ${stop} | ${kept} | ${p.test.toFixed(4)} | ${p.testNdcg.toFixed(4)} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
