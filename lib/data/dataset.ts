/**
 * The canonical dataset every model trains on: preprocessed chronological sequences (CSR, items 1..N,
 * 0 = padding), the item table (external id, optional text, optional image path), item popularity, a
 * fingerprint of the sources and options, and a load report (rows read, duplicates, header, guesses, what
 * preprocessing dropped, cache state). Prepared data sets are cached on disk as raw little-endian arrays plus
 * a JSON table (meta.json, which also records each array's byte length and sha256, verified on every open),
 * keyed by the fingerprint, and rebuilt when a source file or an option changes or an array fails its check.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MorecError } from '../errors';
import { hashFd, sha256Of } from '../io/hash';
import { Sequences } from '../sequences';
import { findAtomicName, loadAmazonAtomic } from './loaders/amazon_atomic';
import { HM_TRANSACTIONS, isHmFolder, loadHm } from './loaders/hm';
import { findIdVsMoRec, loadIdVsMoRec } from './loaders/idvsmorec';
import { findImageFolder, listImages } from './loaders/images';
import { loadInteractions } from './loaders/interactions';
import { isMindFolder, loadMind, MIND_BEHAVIORS } from './loaders/mind';
import { loadUserLines } from './loaders/user_lines';
import { preprocess } from './preprocess';
import { fsError, ItemText, listFolder, openRegularFile, Progress, RawData, RawReport, statSource } from './raw';
import { generateSyntheticWorld, SyntheticOptions } from './synthetic';
import { renderSyntheticImages } from './synthetic_images';
import { cleanStaleTemps, tempSuffix } from './temps';

/** Layout of a cache entry. 2: meta.json holds `version`, `report` and `arrays` (byte length + sha256 of each array). */
const CACHE_VERSION = 2;
/** What preparation does, part of every fingerprint. 2: duplicates dropped by default, headers only by their names.
 *  3: MIND and H&M loaders, warm-N, item text options, unresolved ids and warnings in the report, image folders fingerprinted. */
const PREPARE_VERSION = 3;
const ARRAY_FILES = ['offsets.i32', 'items.i32', 'popularity.i32'] as const;

/** What loading and preprocessing read, dropped, kept and guessed; `formatLoadReport` prints it. */
export interface LoadReport extends RawReport {
  format: string;
  /** Users and items the loader produced, and interactions after dropping duplicates. */
  usersRead: number;
  itemsRead: number;
  interactionsRead: number;
  minSeqLen: number;
  maxLen: number;
  /** Users with fewer than minSeqLen interactions, and their interactions. */
  usersDropped: number;
  interactionsOfDroppedUsers: number;
  /** Interactions before each kept user's last maxLen + 3 (0 when maxLen is 0). */
  interactionsBeyondWindow: number;
  /** Items no longer used after the above. */
  itemsDropped: number;
  /** Warm-N (0 = off): items with fewer than N interactions removed, repeated with the minSeqLen rule to a fixpoint. */
  warm: number;
  /** Items warm-N removed and their interactions; users dropped only because of it; rounds to the fixpoint. */
  warmItemsDropped: number;
  warmInteractionsDropped: number;
  usersDroppedByWarm: number;
  warmRounds: number;
  /** Items removed on request (PrepareOptions.dropItems), their interactions, and the users that then fell below minSeqLen. */
  removed?: { items: number; interactions: number; users: number; reason: string };
  /** Prepared items with a text / an image (absent when the data set has none at all). */
  itemsWithText?: number;
  itemsWithImage?: number;
  /** Each a `WARNING:` line of formatLoadReport: most users or interactions dropped, most ids unresolved. */
  warnings: string[];
  /** More than half of the users, or of the interactions (before the L + 3 window), were dropped. */
  dropWarning: boolean;
  /** In the prepared sequences: positions whose item equals the one before (kept, not dropped). */
  consecutiveRepeats: number;
  /** Users whose test item equals their validation item (a case of the above that eases the test). */
  testRepeatsValidation: number;
  /** 'hit (3 arrays verified, sha256)', 'built', 'rebuilt (popularity.i32 truncated)', 'off', 'not written (...)';
   *  '; removed N stale temp folders' when an interrupted build's leftovers were cleaned. Not stored in the cache. */
  cache: string;
}

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
  options: { minSeqLen: number; maxLen: number; keepDuplicates: boolean; warm?: number; itemText?: ItemText };
  report: LoadReport;
  cacheDir?: string;
}

export interface PrepareOptions {
  minSeqLen?: number;
  /** Users keep their last maxLen + 3 items (0 = all). */
  maxLen?: number;
  /** Items file for a generic interactions CSV/TSV. */
  itemsFile?: string;
  /** Keep rows that repeat an earlier row (same user, item and timestamp; see the loaders). Default false. */
  keepDuplicates?: boolean;
  /** Any duplicate dropped, anything guessed (header, columns, delimiter, a MIND history) or an id without a row in
   *  the item table (news.tsv, articles.csv) is an EFORMAT error naming what and where. */
  strict?: boolean;
  /** Warm-N: drop items with fewer than N interactions, then users below minSeqLen, to a fixpoint (paper: 20, 50, 200). 0 = off. */
  warm?: number;
  /** Item text of MIND, H&M and IDvs.MoRec items files: the title (default) or `title. abstract` (H&M: prod_name, detail_desc). */
  itemText?: ItemText;
  /** Where prepared data sets are cached; default $MOREC_CACHE or ~/.cache/morec. false = no cache. */
  cacheDir?: string | false;
  /** Items (external ids) removed before any other filtering, and why (said in the load report): e.g. the items without a usable image under missingImage 'drop'. */
  dropItems?: { ids: string[]; reason: string };
  synthetic?: SyntheticOptions;
  onProgress?: Progress;
}

export function defaultCacheDir(): string {
  return process.env.MOREC_CACHE || path.join(os.homedir(), '.cache', 'morec');
}

/** Reads a data set in any supported layout, before preprocessing. */
export async function loadRaw(source: string, options: PrepareOptions = {}): Promise<RawData> {
  const itemText = options.itemText ?? 'title';
  if (itemText !== 'title' && itemText !== 'title+abstract') throw new MorecError('EINVAL', `Expected 'title' or 'title+abstract' for itemText but received ${JSON.stringify(itemText)}`);
  const load = { onProgress: options.onProgress, keepDuplicates: options.keepDuplicates ?? false, itemText };
  const titleOnly = (format: string) => {
    if (itemText !== 'title') throw new MorecError('EINVAL', `itemText '${itemText}' applies to MIND, H&M and IDvs.MoRec data sets, not to ${format}`);
  };
  if (source === 'synthetic') {
    titleOnly('the synthetic world');
    const world = generateSyntheticWorld(options.synthetic);
    // Images are generated on first use into the cache (or a temp folder when caching is off).
    const root = options.cacheDir === false ? os.tmpdir() : options.cacheDir ?? defaultCacheDir();
    const key = crypto.createHash('sha256').update(JSON.stringify(world.options)).digest('hex').slice(0, 16);
    const imageDir = path.join(root, 'synthetic-images', key);
    let image: string[];
    try {
      image = await renderSyntheticImages(world.items, imageDir, world.options.seed);
    } catch (e) {
      throw fsError(e, imageDir, 'write');
    }
    return {
      userIds: world.userIds,
      offsets: world.sequences.offsets,
      items: world.sequences.items,
      itemIds: world.items.map((i) => i.id),
      text: world.items.map((i) => i.title),
      image,
      format: 'synthetic',
      files: [],
      report: { rowsRead: world.userIds.length, rowUnit: 'generated users', duplicatesFound: 0, duplicatesDropped: 0, duplicateRule: 'not applicable: generated data', headerDetected: 'none', guessed: [] },
    };
  }
  const p = layoutRoot(source);
  if (p !== path.resolve(source) || sourceStat(source).isDirectory()) {
    if (findAtomicName(p)) {
      titleOnly('Amazon atomic files');
      return loadAmazonAtomic(p, load);
    }
    if (isMindFolder(p)) return loadMind(p, load);
    if (isHmFolder(p)) return loadHm(p, load);
    if (findIdVsMoRec(p)) return loadIdVsMoRec(p, load);
    titleOnly('generic interactions or user lines');
    const names = listFolder(p);
    const txt = names.filter((f) => f.endsWith('.txt'));
    if (txt.length === 1) return loadUserLines(path.join(p, txt[0]), load);
    const inter = names.filter((f) => /^(interactions|inter|ratings)\.(csv|tsv)$/i.test(f));
    if (inter.length === 1) {
      const items = names.find((f) => /^items\.(csv|tsv)$/i.test(f));
      return loadInteractions(path.join(p, inter[0]), items ? path.join(p, items) : undefined, load);
    }
    throw new MorecError(
      'EINVAL',
      `${p}: no known data set layout (expected '<Name>.test.inter' atomic files, MIND's '${MIND_BEHAVIORS}' [+ 'news.tsv'], H&M's '${HM_TRANSACTIONS}' [+ 'articles.csv', 'images/'], '*users.tsv' + '*items.tsv', one '<name>.txt' of user lines, or 'interactions.csv|tsv' [+ 'items.csv|tsv'])`,
    );
  }
  titleOnly('generic interactions or user lines');
  if (/\.(csv|tsv)$/i.test(p)) return loadInteractions(p, options.itemsFile, load);
  return loadUserLines(p, load);
}

/**
 * The folder of a MIND `behaviors.tsv` or an H&M `transactions_train.csv` named directly (its news.tsv,
 * articles.csv and images/ are beside it; read as the generic formats they would be misread); else the path.
 */
function layoutRoot(source: string): string {
  const p = path.resolve(source);
  const base = path.basename(p);
  if (base !== MIND_BEHAVIORS && base !== HM_TRANSACTIONS) return p;
  try {
    if (!fs.statSync(p).isFile()) return p;
  } catch {
    return p; // sourceStat names what is missing
  }
  return path.dirname(p);
}

/** The source's stat: ENOENT says what --dataset accepts; devices, FIFOs and sockets are refused (EINVAL). */
function sourceStat(source: string): fs.Stats {
  try {
    return statSource(path.resolve(source));
  } catch (e) {
    if ((e as MorecError).code === 'ENOENT') throw new MorecError('ENOENT', `Expected 'synthetic' or an existing file or folder for dataset but received '${source}'`);
    throw e;
  }
}

/** Feeds a source file into `h`, read through the thread pool (a raw data set can be gigabytes). */
async function hashSourceFile(h: crypto.Hash, file: string): Promise<void> {
  const { fd } = openRegularFile(file);
  try {
    await hashFd(h, fd);
  } catch (e) {
    throw fsError(e, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Files a source consists of, for fingerprinting before anything is parsed (checked to be regular files). */
function sourceFiles(source: string, itemsFile?: string): string[] {
  if (source === 'synthetic') return [];
  const p = layoutRoot(source);
  const files = p !== path.resolve(source) || sourceStat(source).isDirectory()
    ? listFolder(p)
        .filter((f) => !f.startsWith('.'))
        .map((f) => path.join(p, f))
        .filter((f) => {
          try {
            return fs.statSync(f).isFile();
          } catch {
            return false; // a dangling link or an entry removed meanwhile: not part of any layout
          }
        })
    : [p];
  if (itemsFile) files.push(path.resolve(itemsFile));
  return files.sort();
}

export async function fingerprint(source: string, options: PrepareOptions): Promise<string> {
  const h = crypto.createHash('sha256');
  h.update(
    JSON.stringify({
      v: PREPARE_VERSION,
      source: source === 'synthetic' ? 'synthetic' : 'files',
      minSeqLen: options.minSeqLen ?? 5,
      maxLen: options.maxLen ?? 0,
      keepDuplicates: options.keepDuplicates ?? false,
      warm: options.warm ?? 0,
      itemText: options.itemText ?? 'title',
      synthetic: source === 'synthetic' ? options.synthetic ?? {} : undefined,
      ...(options.dropItems?.ids.length ? { dropItems: [...options.dropItems.ids].sort() } : {}),
    }),
  );
  for (const f of sourceFiles(source, options.itemsFile)) {
    h.update(path.basename(f));
    await hashSourceFile(h, f);
  }
  // which items have an image depends on the image folder's listing (the images themselves are read later)
  const root = layoutRoot(source);
  if (source !== 'synthetic' && (root !== path.resolve(source) || sourceStat(source).isDirectory())) {
    const folder = findImageFolder(root);
    if (folder) h.update(`images:${path.basename(folder)}\n${listImages(folder).join('\n')}`);
  }
  return h.digest('hex');
}

function datasetName(source: string): string {
  if (source === 'synthetic') return 'synthetic';
  return path.basename(layoutRoot(source)).replace(/\.[^.]+$/, '');
}

function popularityOf(seqs: Sequences): Int32Array {
  const pop = new Int32Array(seqs.numItems + 1);
  for (let u = 0; u < seqs.users; u++) for (let i = seqs.offsets[u]; i < seqs.offsets[u + 1] - 2; i++) pop[seqs.items[i]]++;
  return pop;
}

function bytesOf(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function sha256(b: Uint8Array): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

interface ArrayRecord {
  bytes: number;
  sha256: string;
}

/** Reads a cached array and checks it against its record; returns why it is unusable, or the array. */
async function readVerified(dir: string, name: string, rec: ArrayRecord | undefined): Promise<Int32Array | string> {
  if (!rec || typeof rec.bytes !== 'number' || typeof rec.sha256 !== 'string') return `${name} not recorded in meta.json`;
  let b: Buffer;
  try {
    b = await fs.promises.readFile(path.join(dir, name));
  } catch (e) {
    return `${name} ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(e as Error).message})`}`;
  }
  if (b.byteLength < rec.bytes) return `${name} truncated: ${b.byteLength} of ${rec.bytes} bytes`;
  if (b.byteLength > rec.bytes) return `${name} has ${b.byteLength} bytes, expected ${rec.bytes}`;
  if ((await sha256Of(b)) !== rec.sha256) return `${name} sha256 mismatch`;
  // Int32Array needs 4-byte alignment, which a small (pooled) Buffer does not promise: copy only then
  if (b.byteOffset % 4 === 0) return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

type CachedMeta = Omit<Dataset, 'sequences' | 'popularity' | 'cacheDir' | 'report'> & {
  version: number;
  report: Omit<LoadReport, 'cache'>;
  arrays: Record<string, ArrayRecord>;
};

/** Opens a verified cache entry, or says why it cannot be used. */
async function openCached(dir: string, fp: string): Promise<Dataset | string> {
  let meta: CachedMeta;
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  } catch (e) {
    return `meta.json unreadable (${(e as Error).message})`;
  }
  if (meta.version !== CACHE_VERSION) return `cache version ${meta.version}, expected ${CACHE_VERSION}`;
  if (meta.fingerprint !== fp) return 'fingerprint mismatch';
  if (!meta.report || !Array.isArray(meta.itemIds)) return 'meta.json incomplete';
  const arrays: Int32Array[] = [];
  for (const name of ARRAY_FILES) {
    const a = await readVerified(dir, name, meta.arrays?.[name]);
    if (typeof a === 'string') return a;
    arrays.push(a);
  }
  const [offsets, items, popularity] = arrays;
  let sequences: Sequences;
  try {
    sequences = new Sequences(offsets, items, meta.itemIds.length);
  } catch (e) {
    return `arrays inconsistent (${(e as Error).message})`;
  }
  const { version: _v, arrays: _a, report, ...rest } = meta;
  return { ...rest, sequences, popularity, report: { ...report, cache: `hit (${ARRAY_FILES.length} arrays verified, sha256)` }, cacheDir: dir };
}

/** Writes the arrays and meta.json into a temp folder, then renames it into place. Returns an error text on failure. */
function writeCache(dir: string, dataset: Dataset): string | undefined {
  const tmp = dir + tempSuffix();
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    const arrays: Record<string, ArrayRecord> = {};
    const data: Record<(typeof ARRAY_FILES)[number], Int32Array> = {
      'offsets.i32': dataset.sequences.offsets,
      'items.i32': dataset.sequences.items,
      'popularity.i32': dataset.popularity,
    };
    for (const name of ARRAY_FILES) {
      const b = bytesOf(data[name]);
      fs.writeFileSync(path.join(tmp, name), b);
      arrays[name] = { bytes: b.byteLength, sha256: sha256(b) };
    }
    const { sequences: _s, popularity: _p, cacheDir: _c, report, ...rest } = dataset;
    const { cache: _cache, ...storedReport } = report;
    const meta: CachedMeta = { version: CACHE_VERSION, ...rest, report: storedReport, arrays };
    fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    return undefined;
  } catch (e) {
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      // nothing was created
    }
    return fsError(e, dir, 'write').message;
  }
}

function countRepeats(seqs: Sequences): { consecutiveRepeats: number; testRepeatsValidation: number } {
  let consecutiveRepeats = 0, testRepeatsValidation = 0;
  const { offsets, items } = seqs;
  for (let u = 0; u < seqs.users; u++) {
    for (let i = offsets[u] + 1; i < offsets[u + 1]; i++) if (items[i] === items[i - 1]) consecutiveRepeats++;
    const end = offsets[u + 1];
    if (end - offsets[u] >= 2 && items[end - 1] === items[end - 2]) testRepeatsValidation++;
  }
  return { consecutiveRepeats, testRepeatsValidation };
}

/** The strict check: anything the loader dropped as a duplicate or guessed is an error naming what and where. */
function enforceStrict(report: LoadReport, source: string): void {
  const problems: string[] = [];
  if (report.duplicatesDropped > 0)
    problems.push(
      `${report.duplicatesDropped} duplicate ${report.rowUnit} dropped (${report.duplicateRule}; first: ${report.firstDuplicate}); remove them from the data or pass keepDuplicates (--keep-duplicates) to keep them`,
    );
  for (const g of report.guessed) problems.push(`guessed ${g}`);
  const u = report.unresolved;
  if (u)
    problems.push(
      `${u.ids} item ids (${u.interactions} interactions; e.g. ${u.examples.map((x) => `'${x}'`).join(', ')}) have no row in ${u.table}; without --strict they are kept as items without text`,
    );
  if (problems.length) throw new MorecError('EFORMAT', `strict: ${source}: ${problems.join('; ')}`);
}

function pct(a: number, b: number): string {
  return `${((100 * a) / Math.max(1, b)).toFixed(1)}%`;
}

/**
 * Loud warnings: more than half of the users, or of the interactions (duplicates, warm-N and users below
 * minSeqLen; not the L + 3 window, which the protocol trims by design) dropped — which sets dropWarning —
 * and more than half of the interactions naming ids that the item table does not list.
 */
function addWarnings(r: LoadReport): void {
  const warnings: string[] = [];
  if (r.usersDropped * 2 > r.usersRead)
    warnings.push(
      `${r.usersDropped} of ${r.usersRead} users (${pct(r.usersDropped, r.usersRead)}) dropped: fewer than ${r.minSeqLen} interactions` +
        (r.usersDroppedByWarm ? ` (${r.usersDroppedByWarm} of them only after warm-${r.warm} removed their rare items)` : ''),
    );
  const dupInteractions = r.rowUnit === 'interactions' ? r.duplicatesDropped : 0;
  const seen = r.interactionsRead + dupInteractions;
  const lost = dupInteractions + r.warmInteractionsDropped + r.interactionsOfDroppedUsers;
  if (lost * 2 > seen)
    warnings.push(
      `${lost} of ${seen} interactions (${pct(lost, seen)}) dropped before the L + 3 window: ` +
        [dupInteractions ? `${dupInteractions} duplicates` : '', r.warmInteractionsDropped ? `${r.warmInteractionsDropped} of warm-${r.warm}'s rare items` : '', r.interactionsOfDroppedUsers ? `${r.interactionsOfDroppedUsers} of users below ${r.minSeqLen}` : '']
          .filter(Boolean)
          .join(', '),
    );
  if (r.rowUnit !== 'interactions' && r.duplicatesDropped * 2 > r.rowsRead)
    warnings.push(`${r.duplicatesDropped} of ${r.rowsRead} ${r.rowUnit} (${pct(r.duplicatesDropped, r.rowsRead)}) dropped as duplicates`);
  r.dropWarning = warnings.length > 0;
  const u = r.unresolved;
  if (u && u.interactions * 2 > r.interactionsRead)
    warnings.push(`${u.interactions} of ${r.interactionsRead} interactions (${pct(u.interactions, r.interactionsRead)}) name one of ${u.ids} item ids without a row in ${u.table}: those items have no text`);
  r.warnings = warnings;
}

/** The load report as short lines for a terminal (morec data, morec train). */
export function formatLoadReport(r: LoadReport): string[] {
  const lines: string[] = [];
  lines.push(`read ${r.rowsRead} ${r.rowUnit} (${r.format}; header: ${r.headerDetected})`);
  if (r.duplicatesFound === 0) lines.push(`duplicates: 0 (${r.duplicateRule})`);
  else if (r.duplicatesDropped > 0) lines.push(`duplicates: dropped ${r.duplicatesDropped} (${r.duplicateRule}); first: ${r.firstDuplicate}; --keep-duplicates keeps them`);
  else lines.push(`duplicates: kept ${r.duplicatesFound} (--keep-duplicates; ${r.duplicateRule}); first: ${r.firstDuplicate}`);
  for (const n of r.notes ?? []) lines.push(n);
  if (r.unresolved)
    lines.push(
      `unresolved ids: ${r.unresolved.ids} item ids (${r.unresolved.interactions} interactions; e.g. ${r.unresolved.examples.join(', ')}) have no row in ${r.unresolved.table}: kept as items without text (--strict refuses them)`,
    );
  if (r.removed)
    lines.push(
      `removed ${r.removed.items} items (${r.removed.reason}) with their ${r.removed.interactions} interactions; ${r.removed.users} users then fell below ${r.minSeqLen} and were dropped`,
    );
  if (r.warm)
    lines.push(
      `warm-${r.warm}: removed ${r.warmItemsDropped} items with fewer than ${r.warm} interactions (${r.warmInteractionsDropped} interactions) and then ${r.usersDroppedByWarm} users left below ${r.minSeqLen}, ` +
        `${r.warmRounds} round${r.warmRounds === 1 ? '' : 's'} to a fixpoint`,
    );
  lines.push(
    `preprocessing: ${r.usersRead} users, ${r.itemsRead} items, ${r.interactionsRead} interactions read; dropped ${r.usersDropped} users with fewer than ${r.minSeqLen} interactions (${r.interactionsOfDroppedUsers} interactions), ` +
      `${r.interactionsBeyondWindow} interactions before ${r.maxLen > 0 ? `each user's last ${r.maxLen + 3}` : 'the window (none: maxLen 0)'}, ${r.itemsDropped} items no longer used`,
  );
  if (r.itemsWithText !== undefined || r.itemsWithImage !== undefined) {
    const kept = r.itemsRead - r.itemsDropped;
    lines.push(
      `items: ${[r.itemsWithText !== undefined ? `${r.itemsWithText} of ${kept} with text` : '', r.itemsWithImage !== undefined ? `${r.itemsWithImage} of ${kept} with an image` : ''].filter(Boolean).join(', ')}`,
    );
  }
  lines.push(`consecutive repeats (same item twice in a row, kept): ${r.consecutiveRepeats}; users whose test item repeats their validation item: ${r.testRepeatsValidation}`);
  for (const g of r.guessed) lines.push(`guessed: ${g}`);
  for (const w of r.warnings ?? []) lines.push(`WARNING: ${w}`);
  lines.push(`cache: ${r.cache}`);
  return lines;
}

export async function prepareDataset(source: string, options: PrepareOptions = {}): Promise<Dataset> {
  const minSeqLen = options.minSeqLen ?? 5;
  const maxLen = options.maxLen ?? 0;
  const keepDuplicates = options.keepDuplicates ?? false;
  const warm = options.warm ?? 0;
  if (!Number.isInteger(warm) || warm < 0) throw new MorecError('EINVAL', `Expected a non-negative integer for warm but received ${JSON.stringify(warm)}`);
  const itemText = options.itemText ?? 'title';
  if (source !== 'synthetic') sourceStat(source);
  if (options.itemsFile) statSource(path.resolve(options.itemsFile));
  const fp = await fingerprint(source, options);
  const name = datasetName(source);
  const cacheRoot = options.cacheDir === false ? undefined : options.cacheDir ?? defaultCacheDir();
  const datasetsRoot = cacheRoot ? path.join(cacheRoot, 'datasets') : undefined;
  const dir = datasetsRoot ? path.join(datasetsRoot, `${name}-${fp.slice(0, 16)}`) : undefined;
  const removed = datasetsRoot ? cleanStaleTemps(datasetsRoot) : 0;
  const cleaned = removed ? `; removed ${removed} stale temp folder${removed > 1 ? 's' : ''} of interrupted builds` : '';
  let cacheState = dir ? 'built' : 'off';
  if (dir && fs.existsSync(dir)) {
    const cached = await openCached(dir, fp);
    if (typeof cached !== 'string') {
      cached.report.cache += cleaned;
      if (options.strict) enforceStrict(cached.report, source);
      return cached;
    }
    cacheState = `rebuilt (${cached})`;
  }
  const raw = await loadRaw(source, options);
  const rawSeqs = new Sequences(raw.offsets, raw.items, raw.itemIds.length);
  let removeItems: number[] | undefined;
  if (options.dropItems?.ids.length) {
    const index = new Map(raw.itemIds.map((id, i) => [id, i + 1]));
    removeItems = options.dropItems.ids.map((id) => {
      const i = index.get(id);
      if (i === undefined) throw new MorecError('EINVAL', `${source}: dropItems names item '${id}', which the data set does not have`);
      return i;
    });
  }
  const pre = preprocess(rawSeqs, { minSeqLen, maxLen, warm, removeItems });
  const pick = <T>(a: T[] | undefined) => (a ? Array.from(pre.itemMap, (old) => a[old - 1]) : undefined);
  const text = pick(raw.text ?? undefined) as (string | null)[] | undefined;
  const image = pick(raw.image ?? undefined) as (string | null)[] | undefined;
  const st = pre.stats;
  const report: LoadReport = {
    format: raw.format,
    ...raw.report,
    usersRead: raw.userIds.length,
    itemsRead: raw.itemIds.length,
    interactionsRead: raw.items.length,
    minSeqLen,
    maxLen,
    usersDropped: raw.userIds.length - pre.keptUsers.length,
    interactionsOfDroppedUsers: st.interactionsOfDroppedUsers,
    interactionsBeyondWindow: st.interactionsBeyondWindow,
    itemsDropped: raw.itemIds.length - pre.itemMap.length,
    warm,
    warmItemsDropped: st.warmItemsDropped,
    warmInteractionsDropped: st.warmInteractionsDropped,
    usersDroppedByWarm: st.usersDroppedByWarm,
    warmRounds: st.warmRounds,
    ...(removeItems ? { removed: { items: removeItems.length, interactions: st.removedItemInteractions, users: st.usersDroppedByRemoval, reason: options.dropItems!.reason } } : {}),
    ...(text ? { itemsWithText: text.filter((t) => t !== null && t !== undefined).length } : {}),
    ...(image ? { itemsWithImage: image.filter((t) => t !== null && t !== undefined).length } : {}),
    ...countRepeats(pre.sequences),
    warnings: [],
    dropWarning: false,
    cache: cacheState,
  };
  addWarnings(report);
  const dataset: Dataset = {
    name,
    format: raw.format,
    fingerprint: fp,
    sequences: pre.sequences,
    userIds: Array.from(pre.keptUsers, (u) => raw.userIds[u]),
    itemIds: Array.from(pre.itemMap, (old) => raw.itemIds[old - 1]),
    text,
    image,
    popularity: popularityOf(pre.sequences),
    sources: raw.files,
    options: { minSeqLen, maxLen, keepDuplicates, ...(warm ? { warm } : {}), ...(itemText !== 'title' ? { itemText } : {}) },
    report,
  };
  if (dir) {
    const failed = writeCache(dir, dataset);
    if (failed) report.cache = `not written (${failed})`;
    else dataset.cacheDir = dir;
  }
  report.cache += cleaned;
  if (options.strict) enforceStrict(report, source);
  return dataset;
}
