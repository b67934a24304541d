/**
 * The canonical dataset every model trains on: preprocessed chronological sequences (CSR, items 1..N,
 * 0 = padding), the item table (external id, optional text, optional image path), item popularity and a
 * fingerprint of the sources and options. Prepared data sets are cached on disk as raw little-endian
 * arrays plus a JSON table, keyed by the fingerprint, and rebuilt when a source file or an option changes.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { Sequences } from '../sequences';
import { findAtomicName, loadAmazonAtomic } from './loaders/amazon_atomic';
import { findIdVsMoRec, loadIdVsMoRec } from './loaders/idvsmorec';
import { loadInteractions } from './loaders/interactions';
import { loadUserLines } from './loaders/user_lines';
import { preprocess } from './preprocess';
import { Progress, RawData } from './raw';
import { generateSyntheticWorld, SyntheticOptions } from './synthetic';
import { renderSyntheticImages } from './synthetic_images';

const CACHE_VERSION = 1;

export interface Dataset {
  name: string;
  format: string;
  fingerprint: string;
  sequences: Sequences;
  userIds: string[];
  /** itemIds[i - 1] is item index i's external id */
  itemIds: string[];
  text?: (string | null)[];
  image?: (string | null)[];
  /** popularity[i] = interactions of item i in the training prefixes (each sequence without its last 2) */
  popularity: Int32Array;
  sources: string[];
  options: { minSeqLen: number; maxLen: number };
  cacheDir?: string;
}

export interface PrepareOptions {
  minSeqLen?: number;
  /** Users keep their last maxLen + 3 items (0 = all). */
  maxLen?: number;
  /** Items file for a generic interactions CSV/TSV. */
  itemsFile?: string;
  /** Where prepared data sets are cached; default $MOREC_CACHE or ~/.cache/morec. false = no cache. */
  cacheDir?: string | false;
  synthetic?: SyntheticOptions;
  onProgress?: Progress;
}

export function defaultCacheDir(): string {
  return process.env.MOREC_CACHE || path.join(os.homedir(), '.cache', 'morec');
}

/** Reads a data set in any supported layout, before preprocessing. */
export async function loadRaw(source: string, options: PrepareOptions = {}): Promise<RawData> {
  if (source === 'synthetic') {
    const world = generateSyntheticWorld(options.synthetic);
    // Images are generated on first use into the cache (or a temp folder when caching is off).
    const root = options.cacheDir === false ? os.tmpdir() : options.cacheDir ?? defaultCacheDir();
    const key = crypto.createHash('sha256').update(JSON.stringify(world.options)).digest('hex').slice(0, 16);
    const image = await renderSyntheticImages(world.items, path.join(root, 'synthetic-images', key), world.options.seed);
    return {
      userIds: world.userIds,
      offsets: world.sequences.offsets,
      items: world.sequences.items,
      itemIds: world.items.map((i) => i.id),
      text: world.items.map((i) => i.title),
      image,
      format: 'synthetic',
      files: [],
    };
  }
  const p = path.resolve(source);
  if (!fs.existsSync(p)) throw new MorecError('EINVAL', `Expected 'synthetic' or an existing file or folder for dataset but received '${source}'`);
  if (fs.statSync(p).isDirectory()) {
    if (findAtomicName(p)) return loadAmazonAtomic(p, options.onProgress);
    if (findIdVsMoRec(p)) return loadIdVsMoRec(p, options.onProgress);
    const names = fs.readdirSync(p);
    const txt = names.filter((f) => f.endsWith('.txt'));
    if (txt.length === 1) return loadUserLines(path.join(p, txt[0]), options.onProgress);
    const inter = names.filter((f) => /^(interactions|inter|ratings)\.(csv|tsv)$/i.test(f));
    if (inter.length === 1) {
      const items = names.find((f) => /^items\.(csv|tsv)$/i.test(f));
      return loadInteractions(path.join(p, inter[0]), items ? path.join(p, items) : undefined, options.onProgress);
    }
    throw new MorecError(
      'EINVAL',
      `${p}: no known data set layout (expected '<Name>.test.inter' atomic files, '*users.tsv' + '*items.tsv', one '<name>.txt' of user lines, or 'interactions.csv|tsv' [+ 'items.csv|tsv'])`,
    );
  }
  if (/\.(csv|tsv)$/i.test(p)) return loadInteractions(p, options.itemsFile, options.onProgress);
  return loadUserLines(p, options.onProgress);
}

function hashFile(h: crypto.Hash, file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Files a source consists of, for fingerprinting before anything is parsed. */
function sourceFiles(source: string, itemsFile?: string): string[] {
  if (source === 'synthetic') return [];
  const p = path.resolve(source);
  if (!fs.existsSync(p)) return [];
  const files = fs.statSync(p).isDirectory() ? fs.readdirSync(p).filter((f) => !f.startsWith('.')).map((f) => path.join(p, f)).filter((f) => fs.statSync(f).isFile()) : [p];
  if (itemsFile) files.push(path.resolve(itemsFile));
  return files.sort();
}

export function fingerprint(source: string, options: PrepareOptions): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ v: CACHE_VERSION, source: source === 'synthetic' ? 'synthetic' : 'files', minSeqLen: options.minSeqLen ?? 5, maxLen: options.maxLen ?? 0, synthetic: source === 'synthetic' ? options.synthetic ?? {} : undefined }));
  for (const f of sourceFiles(source, options.itemsFile)) {
    h.update(path.basename(f));
    hashFile(h, f);
  }
  return h.digest('hex');
}

function datasetName(source: string): string {
  if (source === 'synthetic') return 'synthetic';
  return path.basename(path.resolve(source)).replace(/\.[^.]+$/, '');
}

function popularityOf(seqs: Sequences): Int32Array {
  const pop = new Int32Array(seqs.numItems + 1);
  for (let u = 0; u < seqs.users; u++) for (let i = seqs.offsets[u]; i < seqs.offsets[u + 1] - 2; i++) pop[seqs.items[i]]++;
  return pop;
}

function writeArray(file: string, a: Int32Array): void {
  fs.writeFileSync(file, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

function readArray(file: string): Int32Array {
  const b = fs.readFileSync(file);
  return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

export async function prepareDataset(source: string, options: PrepareOptions = {}): Promise<Dataset> {
  const minSeqLen = options.minSeqLen ?? 5;
  const maxLen = options.maxLen ?? 0;
  const fp = fingerprint(source, options);
  const name = datasetName(source);
  const cacheRoot = options.cacheDir === false ? undefined : options.cacheDir ?? defaultCacheDir();
  const dir = cacheRoot ? path.join(cacheRoot, 'datasets', `${name}-${fp.slice(0, 16)}`) : undefined;
  if (dir && fs.existsSync(path.join(dir, 'meta.json'))) {
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
      if (meta.fingerprint === fp) {
        const sequences = new Sequences(readArray(path.join(dir, 'offsets.i32')), readArray(path.join(dir, 'items.i32')), meta.itemIds.length);
        return { ...meta, sequences, popularity: readArray(path.join(dir, 'popularity.i32')), cacheDir: dir };
      }
    } catch {
      // a damaged cache entry is rebuilt below
    }
  }
  const raw = await loadRaw(source, options);
  const rawSeqs = new Sequences(raw.offsets, raw.items, raw.itemIds.length);
  const pre = preprocess(rawSeqs, { minSeqLen, maxLen });
  const pick = <T>(a: T[] | undefined) => (a ? Array.from(pre.itemMap, (old) => a[old - 1]) : undefined);
  const dataset: Dataset = {
    name,
    format: raw.format,
    fingerprint: fp,
    sequences: pre.sequences,
    userIds: Array.from(pre.keptUsers, (u) => raw.userIds[u]),
    itemIds: Array.from(pre.itemMap, (old) => raw.itemIds[old - 1]),
    text: pick(raw.text ?? undefined) as (string | null)[] | undefined,
    image: pick(raw.image ?? undefined) as (string | null)[] | undefined,
    popularity: popularityOf(pre.sequences),
    sources: raw.files,
    options: { minSeqLen, maxLen },
  };
  if (dir) {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    writeArray(path.join(tmp, 'offsets.i32'), dataset.sequences.offsets);
    writeArray(path.join(tmp, 'items.i32'), dataset.sequences.items);
    writeArray(path.join(tmp, 'popularity.i32'), dataset.popularity);
    const { sequences: _s, popularity: _p, cacheDir: _c, ...meta } = dataset;
    fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    dataset.cacheDir = dir;
  }
  return dataset;
}
