/**
 * `morec report <study folder>`: report.md with tables in the paper's shape and SVG figures drawn by Vega-Lite
 * (compiled to Vega, rendered headless to SVG; no browser, no hand-written SVG).
 *   Table 2  models × data sets, test HR@10 / NDCG@10 (each model's best grid cell by valid HR@10)
 *   Table 3  warm-N: the same models on the data sets' warm-20/50/200 variants
 *   Table 5  two-stage rows by adapter depth next to the end-to-end rows of the same backbone (when the study has TS rows)
 *   Table 9  test HR@10 by target-item bucket: new (0 training interactions), cold (1-9), warm (>= 10)
 *   Grid     valid HR@10 of every cell tried
 * Figures: HR@10 by popularity bucket, validation learning curves, HR@10 by item tower, and HR@10 by encoder
 * size (text towers).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { writeAtomic } from '../io/safetensors';
import { readJson } from '../run';
import { ResultRow } from '../study';

// Vega and Vega-Lite are CommonJS-loadable; typed loosely here to keep their large type surface out of ours.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vega = require('vega') as { parse: (spec: unknown) => unknown; View: new (runtime: unknown, opts: { renderer: string }) => { toSVG: () => Promise<string>; finalize: () => void } };
// eslint-disable-next-line @typescript-eslint/no-var-requires
const vegaLite = require('vega-lite') as { compile: (spec: unknown) => { spec: unknown } };

export interface Report {
  file: string;
  figures: string[];
}

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white', ...spec }).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(4));

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** "amazon-toys-warm20" → { base: 'amazon-toys', warm: 20 }. */
function splitWarm(dataset: string): { base: string; warm?: number } {
  const m = /^(.*)-warm(\d+)$/.exec(dataset);
  return m ? { base: m[1], warm: Number(m[2]) } : { base: dataset };
}

interface EpochLine {
  epoch: number;
  'valid HR@10': number;
}

export async function writeReport(studyDir: string): Promise<Report> {
  const dir = path.resolve(studyDir);
  const resultsFile = path.join(dir, 'results.json');
  if (!fs.existsSync(resultsFile)) throw new MorecError('EINVAL', `${dir}: no results.json here (expected a study folder written by morec study or node train.js)`);
  const rows = readJson<ResultRow[]>(resultsFile, 'the study results');
  if (!Array.isArray(rows) || rows.length === 0) throw new MorecError('EFORMAT', `${resultsFile}: expected a non-empty array of result rows`);
  const models = [...new Set(rows.map((r) => r.model))];
  const datasets = [...new Set(rows.map((r) => r.dataset))];
  const plain = datasets.filter((d) => splitWarm(d).warm === undefined);
  const warm = datasets.filter((d) => splitWarm(d).warm !== undefined);
  const find = (m: string, d: string) => rows.find((r) => r.model === m && r.dataset === d);
  const cellText = (r: ResultRow | undefined) => (r ? `${fmt(r['HR@10'])} / ${fmt(r['NDCG@10'])}` : '–');

  const md: string[] = [`# Study report: ${path.basename(dir)}`, ''];
  md.push(`Full ranking over all items, leave-one-out; each model's grid cell chosen by validation HR@10. Protocol: ${[...new Set(rows.map((r) => r.protocol))].join('; ')}.`, '');
  md.push('## Table 2: test HR@10 / NDCG@10', '');
  md.push(table(['model', 'item tower', 'paradigm', ...plain], models.map((m) => [m, rows.find((r) => r.model === m)!.itemTower, rows.find((r) => r.model === m)!.paradigm, ...plain.map((d) => cellText(find(m, d)))])), '');
  if (warm.length) {
    md.push('## Table 3: warm-N data sets (items with fewer than N interactions dropped), test HR@10 / NDCG@10', '');
    md.push(table(['model', ...warm], models.map((m) => [m, ...warm.map((d) => cellText(find(m, d)))])), '');
  }
  // Table 5: two-stage by adapter depth (fusion rows apart) against E2E, per backbone and data set.
  const ts = rows.filter((r) => r.paradigm === 'ts' && typeof r.adapterDepth === 'number' && !r.fusion);
  if (ts.length) {
    const depths = [...new Set(ts.map((r) => r.adapterDepth as number))].sort((a, b) => a - b);
    const lines: string[][] = [];
    // E2E rows of the same backbone and modality (rows from before `modality` existed: any E2E row).
    for (const d of plain)
      for (const backbone of ['sasrec', 'dssm'] as const)
        for (const modality of ['text', 'image', undefined] as const) {
          const here = ts.filter((r) => r.dataset === d && r.backbone === backbone && r.modality === modality);
          if (!here.length) continue;
          const e2e = rows.filter((r) => r.dataset === d && r.backbone === backbone && r.paradigm === 'e2e' && (modality === undefined || r.modality === undefined || r.modality === modality));
          const at = (n: number) => here.find((r) => r.adapterDepth === n);
          lines.push([d, backbone, modality ?? '–', e2e.length ? e2e.map((r) => `${fmt(r['HR@10'])} (${r.model})`).join(', ') : '–', ...depths.map((n) => fmt(at(n)?.['HR@10']))]);
        }
    md.push("## Table 5: two-stage (frozen encoder + adapter of n layers) vs end to end, test HR@10", '');
    md.push(table(['data set', 'backbone', 'modality', 'E2E', ...depths.map((n) => `TS n=${n}`)], lines), '');
  }
  md.push('## Table 9: test HR@10 by target item (users in parentheses): new = 0 training interactions, cold = 1–9, warm = 10 or more', '');
  const bucketRows: string[][] = [];
  for (const r of rows) {
    const b = r.buckets;
    if (!b) continue;
    bucketRows.push([r.model, r.dataset, ...(['new', 'cold', 'warm'] as const).map((k) => (b[k].users ? `${fmt(b[k]['HR@10'])} (${b[k].users})` : '– (0)'))]);
  }
  md.push(table(['model', 'data set', 'new', 'cold', 'warm'], bucketRows), '');
  if (rows.some((r) => Object.keys(r.grid ?? {}).length > 1)) {
    md.push('## Grid: validation HR@10 of every cell', '');
    md.push(table(['model', 'data set', 'cell', 'valid HR@10', 'chosen'], rows.flatMap((r) => Object.entries(r.grid).map(([c, v]) => [r.model, r.dataset, c, fmt(v), v === r.validHR10 ? '✓' : '']))), '');
  }
  md.push('## Runs', '');
  md.push(
    table(
      ['model', 'data set', 'epochs (best)', 'seconds', 'users', 'items', 'users whose test item repeats one in their history', 'run folder'],
      rows.map((r) => [r.model, r.dataset, `${r.epochs} (${r.bestEpoch})`, r.seconds.toFixed(1), String(r.users), String(r.items), String(r.repeatedTargets ?? '–'), r.runDir]),
    ),
    '',
  );

  // Figures.
  const figDir = path.join(dir, 'figures');
  fs.mkdirSync(figDir, { recursive: true });
  const figures: { file: string; title: string; spec: Record<string, unknown> }[] = [];
  const bucketData = rows.flatMap((r) => (['new', 'cold', 'warm'] as const).filter((k) => r.buckets?.[k]?.users).map((k) => ({ model: r.model, dataset: r.dataset, bucket: k, 'HR@10': r.buckets[k]['HR@10'], users: r.buckets[k].users })));
  if (bucketData.length)
    figures.push({
      file: 'hr10-by-bucket.svg',
      title: 'Test HR@10 by the popularity bucket of the target item',
      spec: {
        data: { values: bucketData },
        mark: 'bar',
        facet: { column: { field: 'dataset', type: 'nominal', title: null } },
        spec: {
          width: 60 * models.length,
          height: 180,
          mark: 'bar',
          encoding: {
            x: { field: 'bucket', type: 'nominal', sort: ['new', 'cold', 'warm'], title: 'target item bucket' },
            xOffset: { field: 'model', type: 'nominal' },
            y: { field: 'HR@10', type: 'quantitative', title: 'test HR@10' },
            color: { field: 'model', type: 'nominal' },
            tooltip: [{ field: 'users', type: 'quantitative' }],
          },
        },
      },
    });
  const curves: { model: string; dataset: string; epoch: number; 'valid HR@10': number }[] = [];
  for (const r of rows) {
    const file = path.join(dir, r.runDir, 'metrics.jsonl');
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
      const e = JSON.parse(line) as EpochLine;
      curves.push({ model: r.model, dataset: r.dataset, epoch: e.epoch, 'valid HR@10': e['valid HR@10'] });
    }
  }
  if (curves.length)
    figures.push({
      file: 'learning-curves.svg',
      title: 'Validation HR@10 per epoch (the chosen cell of each model)',
      spec: {
        data: { values: curves },
        facet: { column: { field: 'dataset', type: 'nominal', title: null } },
        spec: {
          width: 260,
          height: 180,
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
            y: { field: 'valid HR@10', type: 'quantitative', title: 'valid HR@10' },
            color: { field: 'model', type: 'nominal' },
          },
        },
      },
    });
  figures.push({
    file: 'hr10-by-item-tower.svg',
    title: 'Test HR@10 by item tower (ID or encoder) and backbone',
    spec: {
      data: { values: rows.map((r) => ({ model: r.model, backbone: r.backbone, tower: r.itemTower, dataset: r.dataset, 'HR@10': r['HR@10'] })) },
      facet: { column: { field: 'dataset', type: 'nominal', title: null } },
      spec: {
        width: 60 * new Set(rows.map((r) => r.itemTower)).size + 40,
        height: 180,
        mark: 'bar',
        encoding: {
          x: { field: 'tower', type: 'nominal', title: 'item tower' },
          xOffset: { field: 'backbone', type: 'nominal' },
          y: { field: 'HR@10', type: 'quantitative', title: 'test HR@10' },
          color: { field: 'backbone', type: 'nominal' },
        },
      },
    },
  });
  const encoded = rows.filter((r) => r.encoderParameters);
  if (encoded.length)
    figures.push({
      file: 'hr10-by-encoder-size.svg',
      title: 'Test HR@10 by the size of the item encoder (text towers)',
      spec: {
        data: { values: encoded.map((r) => ({ model: r.model, backbone: r.backbone, tower: r.itemTower, dataset: r.dataset, parameters: r.encoderParameters, 'HR@10': r['HR@10'] })) },
        width: 320,
        height: 200,
        layer: [
          {
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'parameters', type: 'quantitative', scale: { type: 'log' }, title: 'encoder parameters (log scale)' },
              y: { field: 'HR@10', type: 'quantitative', title: 'test HR@10' },
              color: { field: 'backbone', type: 'nominal' },
              strokeDash: { field: 'dataset', type: 'nominal' },
            },
          },
          { mark: { type: 'text', dy: -8, fontSize: 9 }, encoding: { x: { field: 'parameters', type: 'quantitative', scale: { type: 'log' } }, y: { field: 'HR@10', type: 'quantitative' }, text: { field: 'tower' } } },
        ],
      },
    });
  md.push('## Figures', '');
  const written: string[] = [];
  for (const f of figures) {
    const svg = await renderSvg(f.spec);
    const file = path.join(figDir, f.file);
    writeAtomic(file, [Buffer.from(svg)]);
    written.push(file);
    md.push(`### ${f.title}`, '', `![${f.title}](figures/${f.file})`, '');
  }
  const file = path.join(dir, 'report.md');
  writeAtomic(file, [Buffer.from(md.join('\n'))]);
  return { file, figures: written };
}
