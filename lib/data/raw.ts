/**
 * What every loader produces before preprocessing: users' chronological sequences over interned item ids,
 * plus the item table (external id, optional text, optional image path) and a report of what the loader saw
 * (rows, duplicates, header, guesses). Items are 1..N in order of first appearance; 0 is padding. External ids
 * are kept as the strings written in the file, never parsed as numbers ('1e12' and '1000000000000' are two ids).
 * Also the file access every loader shares: sources must be regular files or folders, fs errors become
 * MorecErrors naming the path, and lines are streamed with 1-based numbers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { MorecError } from '../errors';

/** What a loader saw and decided, before preprocessing (kept in the cache with the prepared data set). */
export interface RawReport {
  /** Data rows read (headers and blank lines excluded), counted in `rowUnit`. */
  rowsRead: number;
  rowUnit: 'interactions' | 'user lines' | 'generated users';
  /** Rows equal to an earlier row under `duplicateRule`. */
  duplicatesFound: number;
  /** duplicatesFound, or 0 with keepDuplicates. */
  duplicatesDropped: number;
  /** What counts as a duplicate in this format. */
  duplicateRule: string;
  /** Where the first duplicate is, e.g. "interactions.csv:12 repeats line 3 (user 'u1', item 'a', timestamp 5)". */
  firstDuplicate?: string;
  /** 'yes (user,item,timestamp)' (the header's own names) or 'none'. */
  headerDetected: string;
  /** Everything the loader assumed rather than read, each naming the file (e.g. columns taken by position). */
  guessed: string[];
  /** Ids in the interactions that the item table (news.tsv, articles.csv) has no row for; kept as items without text. */
  unresolved?: UnresolvedIds;
  /** Format-specific facts worth a line each (impressions read, ids padded, image folder used, ...). */
  notes?: string[];
}

/** Interaction ids without a row in the item table: kept as items without text (null), never an empty string. */
export interface UnresolvedIds {
  /** The item table, e.g. 'news.tsv'. */
  table: string;
  /** Distinct ids, and the interactions that name them. */
  ids: number;
  interactions: number;
  /** A few of them, for the message. */
  examples: string[];
}

/** Which item fields make an item's text: the title (MIND title, H&M prod_name), or title + abstract (MIND abstract, H&M detail_desc). */
export type ItemText = 'title' | 'title+abstract';

/** `title. abstract` (no extra full stop after a title that ends in . ! or ?); either part may be missing. */
export function joinText(title: string, abstract: string | undefined, itemText: ItemText): string | null {
  const t = title.trim();
  const a = itemText === 'title+abstract' ? (abstract ?? '').trim() : '';
  if (!a) return t || null;
  if (!t) return a;
  return /[.!?]$/.test(t) ? `${t} ${a}` : `${t}. ${a}`;
}

export interface RawData {
  userIds: string[];
  offsets: Int32Array;
  items: Int32Array;
  itemIds: string[];
  text?: (string | null)[];
  image?: (string | null)[];
  format: string;
  files: string[];
  report: RawReport;
}

export type Progress = (fraction: number, what: string) => void;

export interface LoadOptions {
  onProgress?: Progress;
  /** Keep rows that repeat an earlier row (default: drop them and count them in the report). */
  keepDuplicates?: boolean;
  /** Item text of MIND, H&M and IDvs.MoRec items files (default 'title'). */
  itemText?: ItemText;
}

/** Interns item ids; collects one sequence per user. */
export class RawBuilder {
  readonly itemIndex = new Map<string, number>();
  readonly itemIds: string[] = [];
  private readonly userIds: string[] = [];
  private readonly offsets: number[] = [0];
  private items: Int32Array = new Int32Array(1024);
  private length = 0;

  item(id: string): number {
    let idx = this.itemIndex.get(id);
    if (idx === undefined) {
      this.itemIds.push(id);
      idx = this.itemIds.length;
      this.itemIndex.set(id, idx);
    }
    return idx;
  }

  /** Adds a user; returns its index. */
  addUser(userId: string, itemIndices: ArrayLike<number>): number {
    while (this.length + itemIndices.length > this.items.length) {
      const grown = new Int32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    for (let i = 0; i < itemIndices.length; i++) this.items[this.length++] = itemIndices[i];
    this.userIds.push(userId);
    this.offsets.push(this.length);
    return this.userIds.length - 1;
  }

  /** Whether user index u's sequence equals `itemIndices`. */
  sameSequence(u: number, itemIndices: ArrayLike<number>): boolean {
    const start = this.offsets[u], end = this.offsets[u + 1];
    if (end - start !== itemIndices.length) return false;
    for (let i = 0; i < itemIndices.length; i++) if (this.items[start + i] !== itemIndices[i]) return false;
    return true;
  }

  build(format: string, files: string[], report: RawReport): RawData {
    if (this.userIds.length === 0) throw new MorecError('EFORMAT', `${files.join(', ')}: no interactions found`);
    return { userIds: this.userIds, offsets: Int32Array.from(this.offsets), items: this.items.slice(0, this.length), itemIds: this.itemIds, format, files, report };
  }
}

/** An fs error as a MorecError naming the path: ENOENT stays ENOENT, permission and other read failures are EIO. */
export function fsError(err: unknown, file: string, action: 'read' | 'write' = 'read'): MorecError {
  if (err instanceof MorecError) return err;
  const e = err as NodeJS.ErrnoException;
  const why = e?.message ?? String(err);
  switch (e?.code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new MorecError('ENOENT', `${file}: no such file or folder`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new MorecError('EIO', `${file}: permission denied (${e.code}): cannot ${action} it`, { cause: err });
    case 'EISDIR':
      return new MorecError('EINVAL', `${file}: is a folder, expected a file`, { cause: err });
    default:
      return new MorecError('EIO', `${file}: cannot ${action} (${why})`, { cause: err });
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function refuseSpecial(st: fs.Stats, p: string): void {
  if (!st.isFile() && !st.isDirectory())
    throw new MorecError('EINVAL', `${p}: is ${kindOf(st)}; expected a regular file or a folder of data files`);
}

/** stat() of a data source that must be a regular file or a folder (devices, FIFOs, sockets refused before any read). */
export function statSource(p: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw fsError(e, p);
  }
  refuseSpecial(st, p);
  return st;
}

/** A folder's entry names, fs errors as MorecErrors. */
export function listFolder(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    throw fsError(e, dir);
  }
}

/**
 * Opens a regular file for reading. O_NONBLOCK keeps the open of a FIFO from waiting for a writer; the
 * descriptor's own fstat then refuses anything that is not a regular file, before a byte is read.
 */
export function openRegularFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw fsError(e, file);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new MorecError('EINVAL', `${file}: is a folder, expected a file`);
    refuseSpecial(st, file);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw fsError(e, file);
  }
}

/** Longest line accepted (characters): far beyond any real row, far below V8's string limit. */
const MAX_LINE = 64 << 20;

/**
 * Streams a text file line by line (1-based line numbers; \n, \r\n and \r end lines; a UTF-8 BOM is skipped),
 * reporting the share of bytes read.
 */
export async function* readLines(file: string, onProgress?: Progress): AsyncGenerator<{ line: string; lineNo: number }> {
  const { fd, size } = openRegularFile(file);
  const stream = fs.createReadStream('', { fd, highWaterMark: 1 << 20 });
  const decoder = new StringDecoder('utf8');
  let lineNo = 0;
  let lastReport = 0;
  let rest = '';
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      const text = rest + decoder.write(chunk);
      let start = 0;
      // rest holds no line end but perhaps a final \r: scan only from there
      for (let i = Math.max(0, rest.length - 1); i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        if (c === 13 && i === text.length - 1) break; // a \r at the end of a chunk may be half of \r\n
        let line = text.slice(start, i);
        if (lineNo === 0 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
        if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
        start = i + 1;
        yield { line, lineNo: ++lineNo };
      }
      rest = text.slice(start);
      if (rest.length > MAX_LINE) throw formatError(file, lineNo + 1, `line longer than ${MAX_LINE} characters (is this a text data file?)`);
      if (onProgress && size) {
        const f = bytes / size;
        if (f - lastReport >= 0.01) {
          lastReport = f;
          onProgress(Math.min(1, f), file);
        }
      }
    }
    rest += decoder.end();
    if (rest.endsWith('\r')) rest = rest.slice(0, -1);
    if (lineNo === 0 && rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
    if (rest.length) yield { line: rest, lineNo: ++lineNo };
  } catch (e) {
    throw fsError(e, file);
  } finally {
    stream.destroy();
  }
  onProgress?.(1, file);
}

export function formatError(file: string, lineNo: number, what: string): MorecError {
  return new MorecError('EFORMAT', `${file}:${lineNo}: ${what}`);
}

/** "interactions.csv:12" style locations keep reports short; errors carry the full path. */
export function where(file: string, lineNo: number): string {
  return `${path.basename(file)}:${lineNo}`;
}
