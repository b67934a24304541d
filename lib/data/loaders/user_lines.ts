/**
 * One user a line, items in time order: `user item item ...` (spaces or tabs). This is the S3Rec layout
 * (e.g. Amazon Toys) and the IDvs.MoRec `users.tsv` layout (`user \t item item ...`).
 */
import { Progress, RawBuilder, RawData, readLines, formatError } from '../raw';

export async function loadUserLines(file: string, onProgress?: Progress, format = 'user-lines'): Promise<RawData> {
  const b = new RawBuilder();
  const seen = new Set<string>();
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const fields = trimmed.split(/[ \t]+/);
    if (fields.length < 2) throw formatError(file, lineNo, `expected 'user item item ...' but the line has no items`);
    if (seen.has(fields[0])) throw formatError(file, lineNo, `user '${fields[0]}' appears on more than one line`);
    seen.add(fields[0]);
    const seq = new Int32Array(fields.length - 1);
    for (let i = 1; i < fields.length; i++) seq[i - 1] = b.item(fields[i]);
    b.addUser(fields[0], seq);
  }
  return b.build(format, [file]);
}
