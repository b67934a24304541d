/**
 * One user a line, items in time order: `user item item ...` (spaces or tabs). This is the S3Rec layout
 * (e.g. Amazon Toys) and the IDvs.MoRec `users.tsv` layout (`user \t item item ...`). There is no header.
 *
 * Duplicates: the format has no timestamps, so an item repeated within a line cannot be told from a
 * re-consumption and is kept (the report counts consecutive repeats). A duplicate is a whole line repeated
 * for the same user with the same items in the same order: dropped after the first unless keepDuplicates,
 * which keeps it as another user of the same id. The same user on two lines with different items is an error.
 */
import { LoadOptions, RawBuilder, RawData, readLines, formatError, where } from '../raw';

export async function loadUserLines(file: string, options: LoadOptions = {}, format = 'user-lines'): Promise<RawData> {
  const { onProgress, keepDuplicates = false } = options;
  const b = new RawBuilder();
  const seen = new Map<string, { user: number; lineNo: number }>();
  let rows = 0;
  let duplicates = 0;
  let firstDuplicate: string | undefined;
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    rows++;
    const fields = trimmed.split(/[ \t]+/);
    if (fields.length < 2) throw formatError(file, lineNo, `expected 'user item item ...' but the line has no items`);
    const seq = new Int32Array(fields.length - 1);
    for (let i = 1; i < fields.length; i++) seq[i - 1] = b.item(fields[i]);
    const before = seen.get(fields[0]);
    if (before) {
      if (!b.sameSequence(before.user, seq))
        throw formatError(file, lineNo, `user '${fields[0]}' appears on more than one line (first on line ${before.lineNo}) with different items`);
      duplicates++;
      firstDuplicate ??= `${where(file, lineNo)} repeats line ${before.lineNo} (user '${fields[0]}', ${seq.length} items)`;
      if (!keepDuplicates) continue;
      b.addUser(fields[0], seq);
      continue;
    }
    seen.set(fields[0], { user: b.addUser(fields[0], seq), lineNo });
  }
  return b.build(format, [file], {
    rowsRead: rows,
    rowUnit: 'user lines',
    duplicatesFound: duplicates,
    duplicatesDropped: keepDuplicates ? 0 : duplicates,
    duplicateRule: "a user's line repeated with the same items in the same order (no timestamps: repeated items within a line are kept)",
    ...(firstDuplicate ? { firstDuplicate } : {}),
    headerDetected: 'none',
    guessed: [],
  });
}
