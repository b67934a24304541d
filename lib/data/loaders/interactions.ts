/**
 * Generic interactions: a CSV or TSV of `user, item, timestamp` (more columns ignored; header detected),
 * grouped by user and ordered by time (file order breaks ties), plus an optional items file with a header
 * naming `item` (or `id`), and `text` (or `title`) and/or `image` (or `image_path`) columns.
 */
import * as path from 'node:path';
import { Progress, RawBuilder, RawData, readLines, formatError } from '../raw';

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
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
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

export async function loadInteractions(file: string, itemsFile?: string, onProgress?: Progress): Promise<RawData> {
  const delimiter = /\.tsv$|\.tab$/i.test(file) ? '\t' : undefined;
  const userIndex = new Map<string, number>();
  const userIds: string[] = [];
  const b = new RawBuilder();
  const users = new Column((n) => new Int32Array(n));
  const items = new Column((n) => new Int32Array(n));
  const times = new Column((n) => new Float64Array(n));
  let delim = delimiter;
  let first = true;
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!line.trim()) continue;
    if (!delim) delim = line.includes('\t') ? '\t' : ',';
    const f = splitFields(line, delim);
    if (first) {
      first = false;
      // A header: its timestamp column is not a time, or it names the columns.
      if (f.length >= 3 && (Number.isNaN(parseTime(f[2])) || /^(user|user_id|userid)$/i.test(f[0].trim()))) continue;
    }
    if (f.length < 3) throw formatError(file, lineNo, `expected 3 columns (user, item, timestamp) but found ${f.length}`);
    const u = f[0].trim(), it = f[1].trim();
    if (!u) throw formatError(file, lineNo, 'empty user id');
    if (!it) throw formatError(file, lineNo, 'empty item id');
    const t = parseTime(f[2]);
    if (Number.isNaN(t)) throw formatError(file, lineNo, `unparsable timestamp '${f[2]}' (expected a number or a date)`);
    let ui = userIndex.get(u);
    if (ui === undefined) {
      ui = userIds.length;
      userIds.push(u);
      userIndex.set(u, ui);
    }
    users.push(ui);
    items.push(b.item(it));
    times.push(t);
  }
  // Order interactions by (user, time, file position): a counting sort by user keeps file order, then each
  // user's few interactions are sorted by time where they are not already in order.
  const n = users.length;
  const U = users.data, T = times.data, I = items.data;
  const start = new Int32Array(userIds.length + 1);
  for (let i = 0; i < n; i++) start[U[i] + 1]++;
  for (let u = 0; u < userIds.length; u++) start[u + 1] += start[u];
  const order = new Int32Array(n);
  const fill = start.slice(0, userIds.length);
  for (let i = 0; i < n; i++) order[fill[U[i]]++] = i;
  for (let u = 0; u < userIds.length; u++) {
    const seg = order.subarray(start[u], start[u + 1]);
    let sorted = true;
    for (let k = 1; k < seg.length && sorted; k++) sorted = T[seg[k - 1]] <= T[seg[k]];
    if (!sorted) seg.sort((a, c) => T[a] - T[c] || a - c);
    b.addUser(userIds[u], Array.from(seg, (i) => I[i]));
  }
  const raw = b.build('interactions', itemsFile ? [file, itemsFile] : [file]);
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
