/**
 * H&M Personalized Fashion Recommendations in its Kaggle layout, a folder holding
 *   transactions_train.csv  t_dat,customer_id,article_id,price,sales_channel_id (a header is required; columns by name)
 *   articles.csv            article_id,...,prod_name,...,detail_desc (optional: item text)
 *   images/                 <article_id>.jpg flat, or images/<first 3 digits>/<article_id>.jpg as Kaggle ships them (optional)
 *
 * Article ids are 10-digit zero-padded strings ('0108775015'); files re-saved by pandas lose the leading zero
 * ('108775015'), so an all-digit id of up to 10 digits is padded to 10 (counted in the report's notes) and
 * anything else is an error. A customer's purchases are ordered by t_dat (a day), then by file order. The
 * same article bought twice by a customer on one day is two identical rows in the file; under the duplicate
 * rule (same user, item and timestamp) the second is dropped and counted, unless keepDuplicates.
 *
 * Item text: prod_name, or prod_name + detail_desc with itemText 'title+abstract'. An article that
 * articles.csv does not list is kept as an item without text (counted as unresolved); an article without a
 * photo has no image path (null). Neither ever becomes an empty string.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatError, ItemText, joinText, LoadOptions, listFolder, RawData } from '../raw';
import { findImageFolder, imagesById } from './images';
import { readInteractions, readRecords } from './interactions';

export const HM_TRANSACTIONS = 'transactions_train.csv';

export function isHmFolder(dir: string): boolean {
  return listFolder(dir).includes(HM_TRANSACTIONS);
}

/** A 10-digit H&M article id; undefined when `id` is not one (or an unpadded one). */
export function hmArticleId(id: string): string | undefined {
  return /^\d{1,10}$/.test(id) ? id.padStart(10, '0') : undefined;
}

export async function loadHm(dir: string, options: LoadOptions = {}): Promise<RawData> {
  const itemText: ItemText = options.itemText ?? 'title';
  const notes: string[] = [];
  let padded = 0;
  let paddedExample = '';
  const normalize = (id: string, file: string, lineNo: number) => {
    const a = hmArticleId(id);
    if (a === undefined) throw formatError(file, lineNo, `article id '${id}' is not an H&M article id (up to 10 digits)`);
    if (a !== id) {
      padded++;
      paddedExample ||= `${id} -> ${a}`;
    }
    return a;
  };
  const transactions = path.join(dir, HM_TRANSACTIONS);
  const { raw, builder } = await readInteractions(transactions, {
    ...options,
    normalizeItem: normalize,
    requireHeader: 't_dat, customer_id, article_id',
    format: 'hm',
  });
  if (padded) notes.push(`${HM_TRANSACTIONS}: ${padded} article ids zero-padded to 10 digits (e.g. ${paddedExample})`);
  const index = builder.itemIndex;

  const articles = path.join(dir, 'articles.csv');
  if (fs.existsSync(articles)) {
    raw.files.push(articles);
    const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
    const listed = new Uint8Array(raw.itemIds.length);
    let cols: { id: number; name: number; desc: number; count: number } | undefined;
    let rows = 0, paddedHere = 0, emptyName = 0;
    for await (const { fields: f, lineNo, line } of readRecords(articles, ',', options.onProgress)) {
      if (!cols) {
        const names = f.map((s) => s.trim().toLowerCase());
        cols = { id: names.indexOf('article_id'), name: names.indexOf('prod_name'), desc: names.indexOf('detail_desc'), count: f.length };
        if (cols.id < 0 || cols.name < 0) throw formatError(articles, lineNo, `expected a header naming 'article_id' and 'prod_name' (H&M articles.csv) but found '${line.slice(0, 200)}'`);
        if (itemText === 'title+abstract' && cols.desc < 0) throw formatError(articles, lineNo, `itemText 'title+abstract' needs a 'detail_desc' column, which the header does not name`);
        continue;
      }
      if (f.length !== cols.count) throw formatError(articles, lineNo, `expected ${cols.count} columns as in the header but found ${f.length}`);
      rows++;
      const raw_id = f[cols.id].trim();
      const id = hmArticleId(raw_id);
      if (id === undefined) throw formatError(articles, lineNo, `article id '${raw_id}' is not an H&M article id (up to 10 digits)`);
      if (id !== raw_id) paddedHere++;
      const idx = index.get(id);
      if (idx === undefined) continue; // an article nobody bought is not part of the data set
      if (listed[idx - 1]) throw formatError(articles, lineNo, `article '${id}' is listed twice`);
      listed[idx - 1] = 1;
      const t = joinText(f[cols.name], cols.desc >= 0 ? f[cols.desc] : undefined, itemText);
      if (t === null) emptyName++;
      text[idx - 1] = t;
    }
    raw.text = text;
    notes.push(
      `articles.csv: ${rows} articles (${paddedHere ? `${paddedHere} ids zero-padded; ` : ''}item text: ${itemText === 'title' ? 'prod_name' : 'prod_name. detail_desc'}` +
        `${emptyName ? `; ${emptyName} with an empty ${itemText === 'title' ? 'prod_name' : 'prod_name and detail_desc'}: no text` : ''})`,
    );
    const unresolved: string[] = [];
    for (let i = 0; i < listed.length; i++) if (!listed[i]) unresolved.push(raw.itemIds[i]);
    if (unresolved.length) {
      let interactions = 0;
      for (const it of raw.items) if (!listed[it - 1]) interactions++;
      raw.report.unresolved = { table: 'articles.csv', ids: unresolved.length, interactions, examples: unresolved.slice(0, 3) };
    }
  } else notes.push('no articles.csv: items have no text');

  const folder = findImageFolder(dir);
  if (folder) {
    const byId = imagesById(folder);
    const image: (string | null)[] = raw.itemIds.map((id) => byId.get(id) ?? null);
    raw.image = image;
    const found = image.filter((p) => p !== null).length;
    notes.push(`${path.basename(folder)}/: ${byId.size} images; ${found} of ${raw.itemIds.length} articles have one (the rest: no image)`);
  } else notes.push('no images/ folder: items have no image');
  raw.report.notes = notes;
  return raw;
}
