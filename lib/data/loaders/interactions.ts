/**
 * Generic interactions: a CSV or TSV of `user, item, timestamp`, grouped by user and ordered by time (file
 * order breaks ties), plus an optional items file with a header naming `item` (or `id`), and `text` (or
 * `title`) and/or `image` (or `image_path`) columns.
 *
 * Header: the first row is a header only when it names known columns (USER_COLUMNS, ITEM_COLUMNS,
 * TIME_COLUMNS below, case-insensitive, a RecBole `:type` suffix ignored); the columns are then found by
 * name and others ignored. Otherwise the first row is data, columns are taken by position (user, item,
 * timestamp; more ignored) and that assumption is reported as guessed. A value that fails to parse is always
 * an error naming file:line, never a reason to skip a row.
 *
 * Duplicates: rows with the same user, item and timestamp (timestamps compared as parsed, so `5` = `5.0`)
 * are dropped after the first (file order) unless keepDuplicates; they are counted in the report.
 *
 * The H&M and MIND loaders build on this one: `readInteractions` takes an item-id normaliser and can demand a
 * header, and `groupByUser` is the ordering and duplicate rule every timestamped format shares.
 */
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { LoadOptions, Progress, RawBuilder, RawData, RawReport, readLines, formatError, where } from '../raw';

/** Header names recognised for each role (lower case; RecBole's `name:type` matches by name). */
export const USER_COLUMNS = ['user', 'user_id', 'userid', 'uid', 'customer_id', 'visitor_id', 'visitorid'];
export const ITEM_COLUMNS = ['item', 'item_id', 'itemid', 'iid', 'article_id', 'product_id', 'movie_id', 'movieid', 'news_id', 'asin'];
export const TIME_COLUMNS = ['timestamp', 'time', 'ts', 'date', 'datetime', 't_dat', 'time_stamp', 'unix_time'];

function columnName(s: string): string {
  return s.trim().toLowerCase().replace(/:[a-z_]+$/, '');
}

/** Splits one CSV/TSV line; double-quoted fields may hold the delimiter and "" escapes. */
export function splitFields(line: string, delimiter: string): string[] {
  return parseRecord(line, delimiter) ?? parseRecord(line + '"', delimiter)!;
}

/**
 * Splits one CSV/TSV record; undefined while a quoted field is still open at the end of `text` (the record
 * continues on the next line). A quote opens a field only at its start; "" inside a quoted field is a quote.
 */
export function parseRecord(text: string, delimiter: string): string[] | undefined {
  if (delimiter === '\t' || !text.includes('"')) return text.split(delimiter);
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === delimiter) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) return undefined;
  out.push(cur);
  return out;
}

/** Longest record (in lines) a quoted field may span before the file is called malformed. */
const MAX_RECORD_LINES = 1000;

/**
 * The records of a CSV/TSV file (blank lines skipped), a quoted field spanning line ends joined with \n; the
 * delimiter is the given one, else tab when the first record has tabs, else comma. lineNo is the record's first line.
 */
export async function* readRecords(file: string, delimiter: string | undefined, onProgress?: Progress): AsyncGenerator<{ fields: string[]; lineNo: number; delimiter: string; line: string }> {
  let pending: { text: string; lineNo: number; lines: number } | undefined;
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!pending && !line.trim()) continue;
    if (!delimiter) delimiter = line.includes('\t') ? '\t' : ',';
    const text = pending ? pending.text + '\n' + line : line;
    const start = pending ? pending.lineNo : lineNo;
    const fields = parseRecord(text, delimiter);
    if (!fields) {
      const lines = (pending?.lines ?? 0) + 1;
      if (lines >= MAX_RECORD_LINES) throw formatError(file, start, `a quoted field opened here is not closed within ${MAX_RECORD_LINES} lines`);
      pending = { text, lineNo: start, lines };
      continue;
    }
    pending = undefined;
    yield { fields, lineNo: start, delimiter, line: text };
  }
  if (pending) throw formatError(file, pending.lineNo, 'a quoted field opened here is not closed before the end of the file');
}

export function parseTime(s: string): number {
  const t = s.trim();
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? NaN : ms / 1000;
}

interface Columns {
  user: number;
  item: number;
  time: number;
  /** fields a row needs */
  width: number;
}

/** The first row as a header (when it names known columns), or undefined when it is data. */
function headerColumns(fields: string[], file: string, lineNo: number): Columns | undefined {
  const names = fields.map(columnName);
  const find = (role: string, aliases: string[]) => {
    const hits = names.flatMap((n, i) => (aliases.includes(n) ? [i] : []));
    if (hits.length > 1) throw formatError(file, lineNo, `the header names ${hits.map((i) => `'${fields[i].trim()}'`).join(' and ')}: which is the ${role} column is ambiguous`);
    return hits.length ? hits[0] : -1;
  };
  const user = find('user', USER_COLUMNS), item = find('item', ITEM_COLUMNS), time = find('timestamp', TIME_COLUMNS);
  if (user < 0 && item < 0 && time < 0) return undefined;
  const missing = [user < 0 ? 'user' : '', item < 0 ? 'item' : '', time < 0 ? 'timestamp' : ''].filter(Boolean);
  if (missing.length)
    throw formatError(file, lineNo, `the header '${fields.join(',')}' names no ${missing.join(' or ')} column (recognised: user ${USER_COLUMNS.join('|')}; item ${ITEM_COLUMNS.join('|')}; timestamp ${TIME_COLUMNS.join('|')})`);
  return { user, item, time, width: Math.max(user, item, time) + 1 };
}

/** A growable typed column. */
export class Column<T extends Int32Array | Float64Array> {
  data: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.data = make(1 << 16);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = this.make(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
}

/** Where the first duplicate is: event r repeats event `earlier` of user u. */
export interface DuplicateFound {
  count: number;
  first?: { r: number; earlier: number; user: number };
}

/**
 * Orders events (rows r = 0..n-1 in file order: user U[r], item I[r], time T[r]) by (user, time, file order)
 * and hands each user's item sequence to `onUser` in user order. Within a run of equal times, an item
 * repeated is a duplicate: dropped unless keepDuplicates, counted either way. A counting sort by user keeps
 * file order; each user's few events are sorted by time only where they are not already in order.
 */
export function groupByUser(
  users: number,
  n: number,
  U: Int32Array,
  I: Int32Array,
  T: Float64Array,
  keepDuplicates: boolean,
  onUser: (u: number, seq: number[]) => void,
): DuplicateFound {
  const start = new Int32Array(users + 1);
  for (let i = 0; i < n; i++) start[U[i] + 1]++;
  for (let u = 0; u < users; u++) start[u + 1] += start[u];
  const order = new Int32Array(n);
  const fill = start.slice(0, users);
  for (let i = 0; i < n; i++) order[fill[U[i]]++] = i;
  const found: DuplicateFound = { count: 0 };
  const seenAt = new Map<number, number>();
  const seq: number[] = [];
  for (let u = 0; u < users; u++) {
    const seg = order.subarray(start[u], start[u + 1]);
    let sorted = true;
    for (let k = 1; k < seg.length && sorted; k++) sorted = T[seg[k - 1]] <= T[seg[k]];
    if (!sorted) seg.sort((a, c) => T[a] - T[c] || a - c);
    seq.length = 0;
    seenAt.clear();
    for (let k = 0; k < seg.length; k++) {
      const r = seg[k];
      if (k > 0 && T[r] !== T[seg[k - 1]]) seenAt.clear();
      const earlier = seenAt.get(I[r]);
      if (earlier !== undefined) {
        found.count++;
        found.first ??= { r, earlier, user: u };
        if (!keepDuplicates) continue;
      } else seenAt.set(I[r], r);
      seq.push(I[r]);
    }
    onUser(u, seq);
  }
  return found;
}

/** What the H&M loader (and others like it) ask of the generic reader. */
export interface ReadInteractionsOptions extends LoadOptions {
  /** Maps an item id as written to the id used (e.g. H&M's zero-padding); throws a MorecError to refuse one. */
  normalizeItem?: (id: string, file: string, lineNo: number) => string;
  /** A header naming the columns is required (no positional guess); the text says which, for the error. */
  requireHeader?: string;
  format?: string;
}

/** Reads the interactions file into a RawData (no items file). */
export async function readInteractions(file: string, options: ReadInteractionsOptions = {}): Promise<{ raw: RawData; builder: RawBuilder }> {
  const { onProgress, keepDuplicates = false, normalizeItem, requireHeader, format = 'interactions' } = options;
  const byExtension = /\.tsv$|\.tab$/i.test(file) ? '\t' : undefined;
  const userIndex = new Map<string, number>();
  const userIds: string[] = [];
  const b = new RawBuilder();
  const users = new Column((n) => new Int32Array(n));
  const items = new Column((n) => new Int32Array(n));
  const times = new Column((n) => new Float64Array(n));
  const lines = new Column((n) => new Int32Array(n));
  const guessed: string[] = [];
  let headerDetected = 'none';
  let cols: Columns | undefined;
  for await (const { fields: f, lineNo, delimiter } of readRecords(file, byExtension, onProgress)) {
    if (!cols) {
      if (delimiter === '\t' && !byExtension && /\.csv$/i.test(file)) guessed.push(`${where(file, lineNo)}: delimiter taken as tab in a .csv file (the first row has tabs)`);
      cols = headerColumns(f, file, lineNo);
      if (cols) {
        headerDetected = `yes (${[cols.user, cols.item, cols.time].map((i) => f[i].trim()).join(',')})`;
        continue;
      }
      if (requireHeader) throw formatError(file, lineNo, `expected a header naming the columns (${requireHeader}) but the first row is '${f.join(delimiter === '\t' ? '\\t' : delimiter)}'`);
      cols = { user: 0, item: 1, time: 2, width: 3 };
      guessed.push(`${path.basename(file)}: no header; columns taken by position as user, item, timestamp`);
    }
    if (f.length < cols.width)
      throw formatError(
        file,
        lineNo,
        `expected ${cols.width} columns (user, item, timestamp) but found ${f.length}` + (headerDetected === 'none' ? '' : ` (the header names them in columns ${cols.user + 1}, ${cols.item + 1}, ${cols.time + 1})`),
      );
    const u = f[cols.user].trim();
    let it = f[cols.item].trim();
    if (!u) throw formatError(file, lineNo, 'empty user id');
    if (!it) throw formatError(file, lineNo, 'empty item id');
    if (normalizeItem) it = normalizeItem(it, file, lineNo);
    const t = parseTime(f[cols.time]);
    if (Number.isNaN(t)) {
      const hint = lines.length === 0 && headerDetected === 'none' ? `; a header must name its columns, e.g. 'user,item,timestamp'` : '';
      throw formatError(file, lineNo, `unparsable timestamp '${f[cols.time]}' (expected a number or a date${hint})`);
    }
    let ui = userIndex.get(u);
    if (ui === undefined) {
      ui = userIds.length;
      userIds.push(u);
      userIndex.set(u, ui);
    }
    users.push(ui);
    items.push(b.item(it));
    times.push(t);
    lines.push(lineNo);
  }
  if (!cols && requireHeader) throw new MorecError('EFORMAT', `${file}: no interactions found (expected a header naming ${requireHeader}, then rows)`);
  const n = users.length;
  const T = times.data, I = items.data, L = lines.data;
  const dup = groupByUser(userIds.length, n, users.data, I, T, keepDuplicates, (u, seq) => b.addUser(userIds[u], seq));
  const first = dup.first;
  const report: RawReport = {
    rowsRead: n,
    rowUnit: 'interactions',
    duplicatesFound: dup.count,
    duplicatesDropped: keepDuplicates ? 0 : dup.count,
    duplicateRule: 'same user, item and timestamp',
    ...(first ? { firstDuplicate: `${where(file, L[first.r])} repeats line ${L[first.earlier]} (user '${userIds[first.user]}', item '${b.itemIds[I[first.r] - 1]}', timestamp ${T[first.r]})` } : {}),
    headerDetected,
    guessed,
  };
  return { raw: b.build(format, [file], report), builder: b };
}

export async function loadInteractions(file: string, itemsFile?: string, options: LoadOptions = {}): Promise<RawData> {
  const { raw, builder } = await readInteractions(file, options);
  if (itemsFile) {
    raw.files.push(itemsFile);
    await attachItems(raw, itemsFile, builder.itemIndex, options.onProgress);
  }
  return raw;
}

async function attachItems(raw: RawData, file: string, index: Map<string, number>, onProgress?: Progress): Promise<void> {
  let cols: { item: number; text: number; image: number; count: number } | undefined;
  const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const image: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const base = path.dirname(file);
  for await (const { fields: f, lineNo, line } of readRecords(file, /\.tsv$/i.test(file) ? '\t' : undefined, onProgress)) {
    if (!cols) {
      const names = f.map((s) => s.trim().toLowerCase());
      const find = (...c: string[]) => names.findIndex((x) => c.includes(x));
      cols = { item: find('item', 'item_id', 'id'), text: find('text', 'title'), image: find('image', 'image_path'), count: f.length };
      if (cols.item < 0 || (cols.text < 0 && cols.image < 0))
        throw formatError(file, lineNo, `expected a header naming an 'item' column and a 'text' and/or 'image' column but found '${line}'`);
      continue;
    }
    if (f.length !== cols.count) throw formatError(file, lineNo, `expected ${cols.count} columns as in the header but found ${f.length}`);
    const id = f[cols.item].trim();
    if (!id) throw formatError(file, lineNo, 'empty item id');
    const idx = index.get(id);
    if (idx === undefined) continue; // items nobody interacted with are not part of the data set
    // an empty title is no title: null, so a text tower sees it as missing, never as ''
    if (cols.text >= 0) text[idx - 1] = f[cols.text].trim() ? f[cols.text] : null;
    if (cols.image >= 0 && f[cols.image].trim()) image[idx - 1] = path.resolve(base, f[cols.image].trim());
  }
  if (cols && cols.text >= 0) raw.text = text;
  if (cols && cols.image >= 0) raw.image = image;
}
