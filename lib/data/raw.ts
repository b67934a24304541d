/**
 * What every loader produces before preprocessing: users' chronological sequences over interned item ids,
 * plus the item table (external id, optional text, optional image path). Items are 1..N in order of first
 * appearance; 0 is padding.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { MorecError } from '../errors';

export interface RawData {
  userIds: string[];
  offsets: Int32Array;
  items: Int32Array;
  itemIds: string[];
  text?: (string | null)[];
  image?: (string | null)[];
  format: string;
  files: string[];
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

  addUser(userId: string, itemIndices: ArrayLike<number>): void {
    while (this.length + itemIndices.length > this.items.length) {
      const grown = new Int32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    for (let i = 0; i < itemIndices.length; i++) this.items[this.length++] = itemIndices[i];
    this.userIds.push(userId);
    this.offsets.push(this.length);
  }

  build(format: string, files: string[]): RawData {
    if (this.userIds.length === 0) throw new MorecError('EFORMAT', `${files.join(', ')}: no interactions found`);
    return { userIds: this.userIds, offsets: Int32Array.from(this.offsets), items: this.items.slice(0, this.length), itemIds: this.itemIds, format, files };
  }
}

export type Progress = (fraction: number, what: string) => void;

/** Streams a text file line by line (1-based line numbers), reporting the share of bytes read. */
export async function* readLines(file: string, onProgress?: Progress): AsyncGenerator<{ line: string; lineNo: number }> {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new MorecError('EINVAL', `${file}: cannot read (${(e as Error).message})`);
  }
  const stream = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  let lastReport = 0;
  for await (const line of rl) {
    lineNo++;
    if (onProgress && (lineNo & 0xffff) === 0) {
      const f = size ? stream.bytesRead / size : 1;
      if (f - lastReport >= 0.01) {
        lastReport = f;
        onProgress(Math.min(1, f), file);
      }
    }
    yield { line: line.endsWith('\r') ? line.slice(0, -1) : line, lineNo };
  }
  onProgress?.(1, file);
}

export function formatError(file: string, lineNo: number, what: string): MorecError {
  return new MorecError('EFORMAT', `${file}:${lineNo}: ${what}`);
}
