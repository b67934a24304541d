/**
 * The official IDvs.MoRec preprocessed files: `*users.tsv` (`user \t item item ...` in time order) and
 * `*items.tsv` (`id \t title \t abstract` for text data sets; one id a line for image data sets, whose images
 * are then looked up as `images/<id>.jpg` beside the files when that folder exists).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { listFolder, LoadOptions, RawData, readLines, formatError } from '../raw';
import { loadUserLines } from './user_lines';

export function findIdVsMoRec(dir: string): { users: string; items: string } | undefined {
  const names = listFolder(dir);
  const users = names.filter((f) => /users\.tsv$/.test(f));
  const items = names.filter((f) => /items\.tsv$/.test(f));
  return users.length === 1 && items.length === 1 ? { users: path.join(dir, users[0]), items: path.join(dir, items[0]) } : undefined;
}

export async function loadIdVsMoRec(dir: string, options: LoadOptions = {}): Promise<RawData> {
  const found = findIdVsMoRec(dir);
  if (!found) throw new MorecError('EINVAL', `${dir}: expected one '*users.tsv' and one '*items.tsv' (IDvs.MoRec layout)`);
  const raw = await loadUserLines(found.users, options, 'idvsmorec');
  raw.files.push(found.items);
  const index = new Map(raw.itemIds.map((id, i) => [id, i + 1]));
  const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const image: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  const imageDir = path.join(dir, 'images');
  let hasText = false;
  const known = new Set<string>();
  for await (const { line, lineNo } of readLines(found.items, options.onProgress)) {
    if (!line.trim()) continue;
    const f = line.split('\t');
    const id = f[0].trim();
    if (!id) throw formatError(found.items, lineNo, 'empty item id');
    known.add(id);
    const idx = index.get(id);
    if (idx === undefined) continue;
    if (f.length >= 2) {
      hasText = true;
      text[idx - 1] = f[1].trim();
    } else if (fs.existsSync(path.join(imageDir, `${id}.jpg`))) image[idx - 1] = path.join(imageDir, `${id}.jpg`);
  }
  for (let i = 0; i < raw.itemIds.length; i++)
    if (!known.has(raw.itemIds[i])) throw new MorecError('EFORMAT', `${found.users}: item '${raw.itemIds[i]}' is not listed in ${found.items}`);
  if (hasText) raw.text = text;
  if (image.some((x) => x !== null)) raw.image = image;
  return raw;
}
