/**
 * MIND (Microsoft News) in its raw layout, a folder holding
 *   behaviors.tsv  impression id \t user \t time \t history \t impressions   (no header)
 *   news.tsv       news id \t category \t subcategory \t title \t abstract \t url \t entities...   (optional: item text)
 *
 * A user's sequence (the rule, exactly):
 *  1. their history: the space-separated news ids of the history column, in the order written (MIND lists
 *     them in click order; they precede the behaviors log). A user on several impressions has one history;
 *     it is taken from their earliest impression (by time, then file order). Should two of a user's
 *     impressions carry different histories, that choice is reported as guessed (an error with strict).
 *     No timestamps: an id repeated inside a history is kept, as in the one-user-a-line formats;
 *  2. then their clicks: every `<news id>-1` of the impressions column of all their impressions, ordered by
 *     impression time, then file order (line, then position in the line; MIND does not order the news of one
 *     impression). `-0` (shown, not clicked) is ignored. A token without `-0`/`-1` is an error: MIND's test
 *     split has no labels and cannot make sequences.
 * Duplicates: a click on the same news by the same user at the same impression time (a behaviors line written
 * twice, or one id clicked twice in one impression) is dropped after the first and counted, unless
 * keepDuplicates. A click on a news already in the history is a re-read at a later time: kept.
 * The time is MIND's `M/D/YYYY h:mm:ss AM|PM`, read as UTC (only the order matters).
 *
 * Item text: the title, or `title. abstract` with itemText 'title+abstract'. A news id that news.tsv does
 * not list is kept as an item without text (null, never ''): counted as unresolved in the report, refused with
 * strict, and refused by a text tower (missingText 'error') unless told otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatError, ItemText, joinText, LoadOptions, listFolder, RawBuilder, RawData, readLines, where } from '../raw';
import { Column, groupByUser } from './interactions';

export const MIND_BEHAVIORS = 'behaviors.tsv';

export function isMindFolder(dir: string): boolean {
  return listFolder(dir).includes(MIND_BEHAVIORS);
}

/** MIND's `11/12/2019 2:14:46 PM` as seconds (UTC); NaN when it is not that form. */
export function parseMindTime(s: string): number {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ?([AP]M)$/i.exec(s.trim());
  if (!m) return NaN;
  const [mo, d, y, h, mi, se] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 1 || h > 12 || mi > 59 || se > 59) return NaN;
  const hour = (h % 12) + (m[7].toUpperCase() === 'PM' ? 12 : 0);
  return Date.UTC(y, mo - 1, d, hour, mi, se) / 1000;
}

interface UserHistory {
  /** the history column as written (split only when the sequences are built) */
  history: string;
  time: number;
  lineNo: number;
  /** impressions of the user */
  count: number;
}

export async function loadMind(dir: string, options: LoadOptions = {}): Promise<RawData> {
  const { onProgress, keepDuplicates = false } = options;
  const itemText: ItemText = options.itemText ?? 'title';
  const file = path.join(dir, MIND_BEHAVIORS);
  const userIndex = new Map<string, number>();
  const userIds: string[] = [];
  const histories: UserHistory[] = [];
  // clicks, in file order: user, time, line; their news ids as strings (interned when sequences are built,
  // so that items are numbered in order of first appearance in the sequences)
  const cUser = new Column((n) => new Int32Array(n));
  const cTime = new Column((n) => new Float64Array(n));
  const cLine = new Column((n) => new Int32Array(n));
  const cNews: string[] = [];
  let impressions = 0, notClicked = 0, usersOnSeveral = 0;
  let conflicts = 0;
  let firstConflict = '';
  for await (const { line, lineNo } of readLines(file, onProgress)) {
    if (!line.trim()) continue;
    const f = line.split('\t');
    if (f.length !== 5)
      throw formatError(file, lineNo, `expected 5 tab-separated columns (impression id, user, time, history, impressions) as in MIND's behaviors.tsv but found ${f.length}`);
    impressions++;
    const user = f[1].trim();
    if (!user) throw formatError(file, lineNo, 'empty user id');
    const time = parseMindTime(f[2]);
    if (Number.isNaN(time)) throw formatError(file, lineNo, `unparsable time '${f[2]}' (expected MIND's M/D/YYYY h:mm:ss AM|PM)`);
    const history = f[3].trim();
    let u = userIndex.get(user);
    if (u === undefined) {
      u = userIds.length;
      userIds.push(user);
      userIndex.set(user, u);
      histories.push({ history, time, lineNo, count: 1 });
    } else {
      const h = histories[u];
      if (h.count++ === 1) usersOnSeveral++;
      if (h.history !== history) {
        conflicts++;
        firstConflict ||= `${where(file, lineNo)} and line ${h.lineNo} (user '${user}')`;
      }
      if (time < h.time) histories[u] = { history, time, lineNo, count: h.count };
    }
    for (const token of f[4].trim().split(' ')) {
      if (!token) continue;
      const dash = token.lastIndexOf('-');
      const label = dash > 0 ? token.slice(dash + 1) : '';
      if (label !== '0' && label !== '1')
        throw formatError(file, lineNo, `impression '${token}' has no click label (-1 clicked, -0 not); MIND's test split has no labels and cannot make sequences`);
      if (label === '0') {
        notClicked++;
        continue;
      }
      cUser.push(u);
      cTime.push(time);
      cLine.push(lineNo);
      cNews.push(token.slice(0, dash));
    }
  }

  // sequences: history, then clicks in time order (duplicate clicks dropped)
  const b = new RawBuilder();
  const clickItems = new Int32Array(cNews.length);
  // intern per user in sequence order: history first, then that user's clicks
  const n = cNews.length;
  const byUser: number[][] = Array.from({ length: userIds.length }, () => []);
  for (let r = 0; r < n; r++) byUser[cUser.data[r]].push(r);
  const historyItems: Int32Array[] = [];
  for (let u = 0; u < userIds.length; u++) {
    const h = histories[u].history;
    historyItems.push(Int32Array.from(h ? h.split(' ').filter(Boolean) : [], (id) => b.item(id)));
    for (const r of byUser[u]) clickItems[r] = b.item(cNews[r]);
  }
  let historyInteractions = 0;
  let emptyUsers = 0;
  const dup = groupByUser(userIds.length, n, cUser.data, clickItems, cTime.data, keepDuplicates, (u, clicks) => {
    const hist = historyItems[u];
    historyInteractions += hist.length;
    if (hist.length + clicks.length === 0) {
      emptyUsers++;
      return;
    }
    const seq = new Int32Array(hist.length + clicks.length);
    seq.set(hist);
    seq.set(clicks, hist.length);
    b.addUser(userIds[u], seq);
  });
  const guessed: string[] = [];
  if (conflicts)
    guessed.push(`${MIND_BEHAVIORS}: ${conflicts} impressions carry a history different from another impression of the same user (first: ${firstConflict}); each user's history was taken from their earliest impression`);
  const first = dup.first;
  const raw = b.build('mind', [file], {
    rowsRead: historyInteractions + n,
    rowUnit: 'interactions',
    duplicatesFound: dup.count,
    duplicatesDropped: keepDuplicates ? 0 : dup.count,
    duplicateRule: 'a click on the same news by the same user at the same impression time (history items have no times: kept)',
    ...(first
      ? { firstDuplicate: `${where(file, cLine.data[first.r])} repeats line ${cLine.data[first.earlier]} (user '${userIds[first.user]}', news '${cNews[first.r]}', time ${new Date(cTime.data[first.r] * 1000).toISOString()})` }
      : {}),
    headerDetected: 'none',
    guessed,
  });
  const notes = [
    `${MIND_BEHAVIORS}: ${impressions} impressions of ${userIds.length} users (${usersOnSeveral} on more than one: one history each, clicks merged in time order); ` +
      `${historyInteractions} history items + ${n} clicks read, ${notClicked} shown but not clicked (ignored)` +
      (emptyUsers ? `; ${emptyUsers} users with no history and no click left out` : ''),
  ];

  const newsFile = path.join(dir, 'news.tsv');
  if (fs.existsSync(newsFile)) {
    raw.files.push(newsFile);
    const text: (string | null)[] = new Array(raw.itemIds.length).fill(null);
    const listedAt = new Int32Array(raw.itemIds.length);
    let rows = 0, emptyTitles = 0;
    for await (const { line, lineNo } of readLines(newsFile, onProgress)) {
      if (!line.trim()) continue;
      const f = line.split('\t');
      if (f.length < 5) throw formatError(newsFile, lineNo, `expected at least 5 tab-separated columns (news id, category, subcategory, title, abstract, ...) as in MIND's news.tsv but found ${f.length}`);
      rows++;
      const id = f[0].trim();
      if (!id) throw formatError(newsFile, lineNo, 'empty news id');
      const idx = b.itemIndex.get(id);
      if (idx === undefined) continue; // news nobody read is not part of the data set
      const t = joinText(f[3], f[4], itemText);
      if (listedAt[idx - 1]) {
        // MIND's train and dev news.tsv overlap: the same row twice is fine, a different one is not
        if (text[idx - 1] !== t) throw formatError(newsFile, lineNo, `news '${id}' is listed again (first on line ${listedAt[idx - 1]}) with a different ${itemText === 'title' ? 'title' : 'title or abstract'}`);
        continue;
      }
      listedAt[idx - 1] = lineNo;
      if (t === null) emptyTitles++;
      text[idx - 1] = t;
    }
    raw.text = text;
    const unresolved: string[] = [];
    for (let i = 0; i < listedAt.length; i++) if (!listedAt[i]) unresolved.push(raw.itemIds[i]);
    notes.push(
      `news.tsv: ${rows} news rows; item text: ${itemText === 'title' ? 'title' : 'title. abstract'}` + (emptyTitles ? `; ${emptyTitles} listed news with an empty ${itemText === 'title' ? 'title' : 'title and abstract'}: no text` : ''),
    );
    if (unresolved.length) {
      let interactions = 0;
      for (const it of raw.items) if (!listedAt[it - 1]) interactions++;
      raw.report.unresolved = { table: 'news.tsv', ids: unresolved.length, interactions, examples: unresolved.slice(0, 3) };
    }
  } else notes.push('no news.tsv: items have no text');
  raw.report.notes = notes;
  return raw;
}
