/**
 * The official IDvs.MoRec files (westlake-repl/IDvs.MoRec, `dataset/MIND`, `dataset/HM`, and Bili in the same
 * layout): `*users.tsv` (`user \t item item ...` in time order, e.g. `mind_60w_users.tsv`) and `*items.tsv`
 * (e.g. `mind_60w_items.tsv`, `hm_50w_items.tsv`), one item a line: `id`, or `id \t title [\t abstract]`.
 * Images are `<folder>/<id>.jpg` where the folder is `images/` or the one `*_images/` beside the files (the
 * official `hm_images/v27903.jpg`); jpeg/png/webp files are found as well, flat or one level down.
 * Item text: the title, or `title. abstract` with itemText 'title+abstract'; an empty one is no text (null).
 * Every item of the users file must be listed in the items file (as the official code requires).
 */
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { formatError, ItemText, joinText, listFolder, LoadOptions, RawData, readLines } from '../raw';
import { findImageFolder, imagesById } from './images';
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
  const itemText: ItemText = options.itemText ?? 'title';
  const raw = await loadUserLines(found.users, options, 'idvsmorec');
  raw.files.push(found.items);
  const index = new Map(raw.itemIds.map((id, i) => [id, i + 1]));
  const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
  let hasText = false;
  let emptyText = 0;
  const known = new Set<string>();
  for await (const { line, lineNo } of readLines(found.items, options.onProgress)) {
    if (!line.trim()) continue;
    const f = line.split('\t');
    const id = f[0].trim();
    if (!id) throw formatError(found.items, lineNo, 'empty item id');
    known.add(id);
    const idx = index.get(id);
    if (idx === undefined || f.length < 2) continue;
    hasText = true;
    const t = joinText(f[1], f[2], itemText);
    if (t === null) emptyText++;
    text[idx - 1] = t;
  }
  for (let i = 0; i < raw.itemIds.length; i++)
    if (!known.has(raw.itemIds[i])) throw new MorecError('EFORMAT', `${found.users}: item '${raw.itemIds[i]}' is not listed in ${found.items}`);
  const notes: string[] = [];
  if (hasText) {
    raw.text = text;
    notes.push(`${path.basename(found.items)}: item text: ${itemText === 'title' ? 'title' : 'title. abstract'}${emptyText ? `; ${emptyText} items with an empty one: no text` : ''}`);
  } else if (itemText === 'title+abstract') throw new MorecError('EINVAL', `itemText 'title+abstract': ${found.items} has no text columns (one id a line)`);
  const folder = findImageFolder(dir);
  if (folder) {
    const byId = imagesById(folder);
    const image = raw.itemIds.map((id) => byId.get(id) ?? null);
    const n = image.filter((p) => p !== null).length;
    if (n) raw.image = image;
    notes.push(`${path.basename(folder)}/: ${byId.size} images; ${n} of ${raw.itemIds.length} items have one (the rest: no image)`);
  }
  raw.report.notes = notes;
  return raw;
}
