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
 */
import * as path from 'node:path';
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
  if (delimiter === '\t' || !line.includes('"')) return line.split(delimiter);
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
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
  out.push(cur);
  return out;
}

function parseTime(s: string): number {
  const t = s.trim();
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? NaN : ms / 1000;
}

class Column<T extends Int32Array | Float64Array> {
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

export async function loadInteractions(file: string, itemsFile?: string, options: LoadOptions = {}): Promise<RawData> {
  const { onProgress, keepDuplicates = false } = options;
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
  let delim = byExtension;
  let cols: Columns | undefined;
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!line.trim()) continue;
    if (!delim) {
      delim = line.includes('\t') ? '\t' : ',';
      if (delim === '\t' && /\.csv$/i.test(file)) guessed.push(`${where(file, lineNo)}: delimiter taken as tab in a .csv file (the first row has tabs)`);
    }
    const f = splitFields(line, delim);
    if (!cols) {
      cols = headerColumns(f, file, lineNo);
      if (cols) {
        headerDetected = `yes (${[cols.user, cols.item, cols.time].map((i) => f[i].trim()).join(',')})`;
        continue;
      }
      cols = { user: 0, item: 1, time: 2, width: 3 };
      guessed.push(`${path.basename(file)}: no header; columns taken by position as user, item, timestamp`);
    }
    if (f.length < cols.width)
      throw formatError(
        file,
        lineNo,
        `expected ${cols.width} columns (user, item, timestamp) but found ${f.length}` + (headerDetected === 'none' ? '' : ` (the header names them in columns ${cols.user + 1}, ${cols.item + 1}, ${cols.time + 1})`),
      );
    const u = f[cols.user].trim(), it = f[cols.item].trim();
    if (!u) throw formatError(file, lineNo, 'empty user id');
    if (!it) throw formatError(file, lineNo, 'empty item id');
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
  // Order interactions by (user, time, file position): a counting sort by user keeps file order, then each
  // user's few interactions are sorted by time where they are not already in order. Within a run of equal
  // times, a repeated item is a duplicate row.
  const n = users.length;
  const U = users.data, T = times.data, I = items.data, L = lines.data;
  const start = new Int32Array(userIds.length + 1);
  for (let i = 0; i < n; i++) start[U[i] + 1]++;
  for (let u = 0; u < userIds.length; u++) start[u + 1] += start[u];
  const order = new Int32Array(n);
  const fill = start.slice(0, userIds.length);
  for (let i = 0; i < n; i++) order[fill[U[i]]++] = i;
  let duplicates = 0;
  let firstDuplicate: string | undefined;
  const seenAt = new Map<number, number>();
  const seq: number[] = [];
  for (let u = 0; u < userIds.length; u++) {
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
        duplicates++;
        firstDuplicate ??= `${where(file, L[r])} repeats line ${L[earlier]} (user '${userIds[u]}', item '${b.itemIds[I[r] - 1]}', timestamp ${T[r]})`;
        if (!keepDuplicates) continue;
      } else seenAt.set(I[r], r);
      seq.push(I[r]);
    }
    b.addUser(userIds[u], seq);
  }
  const report: RawReport = {
    rowsRead: n,
    rowUnit: 'interactions',
    duplicatesFound: duplicates,
    duplicatesDropped: keepDuplicates ? 0 : duplicates,
    duplicateRule: 'same user, item and timestamp',
    ...(firstDuplicate ? { firstDuplicate } : {}),
    headerDetected,
    guessed,
  };
  const raw = b.build('interactions', itemsFile ? [file, itemsFile] : [file], report);
  if (itemsFile) await attachItems(raw, itemsFile, b.itemIndex, onProgress);
  return raw;
}

async function attachItems(raw: RawData, file: string, index: Map<string, number>, onProgress?: Progress): Promise<void> {
  let cols: { item: number; text: number; image: number; count: number } | undefined;
  let delim = /\.tsv$/i.test(file) ? '\t' : undefined;
  const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const image: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const base = path.dirname(file);
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!line.trim()) continue;
    if (!delim) delim = line.includes('\t') ? '\t' : ',';
    const f = splitFields(line, delim);
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
    if (cols.text >= 0) text[idx - 1] = f[cols.text];
    if (cols.image >= 0 && f[cols.image].trim()) image[idx - 1] = path.resolve(base, f[cols.image].trim());
  }
  if (cols && cols.text >= 0) raw.text = text;
  if (cols && cols.image >= 0) raw.image = image;
}
