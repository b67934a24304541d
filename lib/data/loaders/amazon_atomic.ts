/**
 * Amazon in the UniSRec/RecBole atomic layout: `<Name>.train.inter`, `.valid.inter`, `.test.inter`
 * (`user \t item_id_list \t item_id`), optional `<Name>.item2index` (`asin \t index`) and `<Name>.text`
 * (`asin \t text`). A user's sequence is their test history plus the test item; the validation file must agree
 * with it (its target is the second-to-last item).
 *
 * Header lines are recognised by their form (every field `name:type`, type token|token_seq|float|float_seq),
 * in each file: a file without one keeps its first row.
 *
 * Duplicates: there are no timestamps, and two users with identical sequences are two users (kept). A
 * duplicate is a test line repeated for the same user with the same history and target: dropped after the
 * first unless keepDuplicates (then kept as another user of the same id). The same user on two test lines
 * with different sequences is an error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { listFolder, LoadOptions, Progress, RawBuilder, RawData, readLines, formatError, where } from '../raw';

export function findAtomicName(dir: string): string | undefined {
  const tests = listFolder(dir).filter((f) => f.endsWith('.test.inter'));
  return tests.length === 1 ? tests[0].slice(0, -'.test.inter'.length) : undefined;
}

/** A RecBole atomic header line: every tab-separated field is `name:type`. */
export function isAtomicHeader(line: string): boolean {
  return line.split('\t').every((f) => /^[^\s:]+:(token|token_seq|float|float_seq)$/.test(f.trim()));
}

async function readTwoColumns(file: string, onProgress?: Progress): Promise<Array<[string, string, number]>> {
  const out: Array<[string, string, number]> = [];
  let first = true;
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!line.trim()) continue;
    if (first) {
      first = false;
      if (isAtomicHeader(line)) continue;
    }
    const tab = line.indexOf('\t');
    if (tab < 0) throw formatError(file, lineNo, "expected 'id \\t value'");
    out.push([line.slice(0, tab), line.slice(tab + 1), lineNo]);
  }
  return out;
}

export async function loadAmazonAtomic(dir: string, options: LoadOptions = {}): Promise<RawData> {
  const { onProgress, keepDuplicates = false } = options;
  const name = findAtomicName(dir);
  if (!name) throw new MorecError('EINVAL', `${dir}: expected one '<Name>.test.inter' file (UniSRec/RecBole atomic layout)`);
  const file = (ext: string) => path.join(dir, `${name}.${ext}`);
  const files = [file('test.inter'), file('valid.inter')];
  // index -> asin, when the mapping is there
  let asinOf: Map<string, string> | undefined;
  if (fs.existsSync(file('item2index'))) {
    files.push(file('item2index'));
    asinOf = new Map();
    for (const [asin, idx] of await readTwoColumns(file('item2index'))) asinOf.set(idx.trim(), asin.trim());
  }
  const itemId = (raw: string, f: string, lineNo: number) => {
    const id = raw.trim();
    if (!id) throw formatError(f, lineNo, 'empty item id');
    if (!asinOf) return id;
    const asin = asinOf.get(id);
    if (asin === undefined) throw formatError(f, lineNo, `unknown item id '${id}' (not in ${path.basename(file('item2index'))})`);
    return asin;
  };
  const b = new RawBuilder();
  const seqOf = new Map<string, { seq: number[]; user: number; lineNo: number }>();
  let headerDetected = 'none';
  let first = true;
  let rows = 0;
  let duplicates = 0;
  let firstDuplicate: string | undefined;
  for await (const { line, lineNo } of readLines(file('test.inter'), onProgress)) {
    if (!line.trim()) continue;
    if (first) {
      first = false;
      if (isAtomicHeader(line)) {
        headerDetected = `yes (${line.split('\t').map((s) => s.trim()).join(',')})`;
        continue;
      }
    }
    rows++;
    const f = line.split('\t');
    if (f.length !== 3) throw formatError(file('test.inter'), lineNo, `expected 3 tab-separated columns (user, item_id_list, item_id) but found ${f.length}`);
    const user = f[0].trim();
    if (!user) throw formatError(file('test.inter'), lineNo, 'empty user id');
    const history = f[1].trim() ? f[1].trim().split(/ +/) : [];
    const seq = [...history, f[2]].map((x) => b.item(itemId(x, file('test.inter'), lineNo)));
    const before = seqOf.get(user);
    if (before) {
      if (!b.sameSequence(before.user, seq))
        throw formatError(file('test.inter'), lineNo, `user '${user}' appears on more than one line (first on line ${before.lineNo}) with different sequences`);
      duplicates++;
      firstDuplicate ??= `${where(file('test.inter'), lineNo)} repeats line ${before.lineNo} (user '${user}', ${seq.length} items)`;
      if (keepDuplicates) b.addUser(user, seq);
      continue;
    }
    seqOf.set(user, { seq, user: b.addUser(user, seq), lineNo });
  }
  first = true;
  for await (const { line, lineNo } of readLines(file('valid.inter'))) {
    if (!line.trim()) continue;
    if (first) {
      first = false;
      if (isAtomicHeader(line)) continue;
    }
    const f = line.split('\t');
    if (f.length !== 3) throw formatError(file('valid.inter'), lineNo, `expected 3 tab-separated columns but found ${f.length}`);
    const seq = seqOf.get(f[0].trim())?.seq;
    if (!seq) throw formatError(file('valid.inter'), lineNo, `user '${f[0].trim()}' is not in ${path.basename(file('test.inter'))}`);
    const target = b.itemIndex.get(itemId(f[2], file('valid.inter'), lineNo));
    if (seq.length < 2 || target !== seq[seq.length - 2])
      throw formatError(file('valid.inter'), lineNo, `validation item does not match the second-to-last item of the user's test history`);
  }
  const raw = b.build('amazon-atomic', files, {
    rowsRead: rows,
    rowUnit: 'user lines',
    duplicatesFound: duplicates,
    duplicatesDropped: keepDuplicates ? 0 : duplicates,
    duplicateRule: "a user's test line repeated with the same history and target (no timestamps: users with identical sequences are distinct users and kept)",
    ...(firstDuplicate ? { firstDuplicate } : {}),
    headerDetected,
    guessed: [],
  });
  if (fs.existsSync(file('text'))) {
    raw.files.push(file('text'));
    const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
    for (const [asin, t] of await readTwoColumns(file('text'))) {
      const idx = b.itemIndex.get(asin.trim());
      if (idx !== undefined) text[idx - 1] = t.trim();
    }
    raw.text = text;
  }
  return raw;
}
