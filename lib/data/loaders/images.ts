/**
 * Item images on disk, found by file name: `<folder>/<id>.<ext>` (flat, as the H&M sample and the IDvs.MoRec
 * `hm_images/v123.jpg` have them) or one level down, `<folder>/<sub>/<id>.<ext>` (the H&M Kaggle layout
 * `images/010/0108775015.jpg`). The folder is listed once (no stat per item); its listing is also part of the
 * data set's fingerprint, so adding or removing an image rebuilds the prepared data set.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from '../../errors';
import { fsError, listFolder } from '../raw';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

/** `images/`, else the one `*_images/` folder (the IDvs.MoRec `hm_images`), inside `dir`; undefined when none. */
export function findImageFolder(dir: string): string | undefined {
  const folders = listFolder(dir).sort().filter((n) => {
    if (!/^images$|_images$/i.test(n)) return false;
    try {
      return fs.statSync(path.join(dir, n)).isDirectory();
    } catch {
      return false;
    }
  });
  const plain = folders.find((n) => n.toLowerCase() === 'images');
  if (plain) return path.join(dir, plain);
  if (folders.length > 1) throw new MorecError('EFORMAT', `${dir}: more than one image folder (${folders.join(', ')}): keep one, or name it 'images'`);
  return folders.length ? path.join(dir, folders[0]) : undefined;
}

/** Image files under `folder`, flat or one level down, as relative paths in sorted order. */
export function listImages(folder: string): string[] {
  const out: string[] = [];
  const isImage = (n: string) => IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase());
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(folder, { withFileTypes: true });
  } catch (e) {
    throw fsError(e, folder);
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isDirectory()) {
      let sub: fs.Dirent[];
      try {
        sub = fs.readdirSync(path.join(folder, e.name), { withFileTypes: true });
      } catch (err) {
        throw fsError(err, path.join(folder, e.name));
      }
      for (const f of sub) if (!f.name.startsWith('.') && !f.isDirectory() && isImage(f.name)) out.push(path.join(e.name, f.name));
    } else if (isImage(e.name)) out.push(e.name);
  }
  return out.sort();
}

/**
 * id (the file name without its extension) -> absolute path. An id found twice (e.g. flat and in a subfolder,
 * or as .jpg and .png) is an error: which image is the item's would be a guess.
 */
export function imagesById(folder: string): Map<string, string> {
  const byId = new Map<string, string>();
  for (const rel of listImages(folder)) {
    const id = path.basename(rel, path.extname(rel));
    const before = byId.get(id);
    if (before !== undefined)
      throw new MorecError('EFORMAT', `${folder}: two images for item '${id}' (${path.relative(folder, before)} and ${rel}): keep one`);
    byId.set(id, path.join(folder, rel));
  }
  return byId;
}
