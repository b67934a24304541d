/**
 * Real-data loaders (MIND raw, H&M Kaggle, IDvs.MoRec/Bili), warm-N and item buckets. The sample counts are
 * recomputed here from the raw files with plain code following the documented rules (lib/data/loaders/mind.ts,
 * hm.ts), not taken from the loaders.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatLoadReport, loadRaw, MorecError, prepareDataset } from '../lib';
import { itemBuckets, NO_BUCKET, targetBuckets } from '../lib/data/buckets';
import { parseMindTime } from '../lib/data/loaders/mind';
import { prepareTextTower } from '../lib/text/text_tower';
import { isMorec } from './helpers';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared', 'data');
const MIND = path.join(SHARED, 'mind-sample');
const HM = path.join(SHARED, 'hm-sample');

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-loaders-'));
}

/** userId -> item ids of a prepared data set (or raw data). */
function seqsOf(d: { userIds: string[]; itemIds: string[]; offsets: Int32Array; items: Int32Array }): Map<string, string[]> {
  const out = new Map<string, string[]>();
  d.userIds.forEach((u, i) => out.set(u, Array.from(d.items.subarray(d.offsets[i], d.offsets[i + 1]), (x) => d.itemIds[x - 1])));
  return out;
}

/** The protocol, in plain code: users below minSeqLen dropped, last L + 3 kept. */
function protocol(seqs: Map<string, string[]>, minSeqLen: number, maxLen: number) {
  const kept = new Map<string, string[]>();
  for (const [u, s] of seqs) if (s.length >= minSeqLen) kept.set(u, s.slice(-(maxLen + 3)));
  const items = new Set<string>();
  let interactions = 0;
  for (const s of kept.values()) {
    for (const x of s) items.add(x);
    interactions += s.length;
  }
  return { kept, items, interactions };
}

/** MIND's rule (see mind.ts) written out independently: history of the earliest impression, then clicks by time. */
function mindByHand(dir: string) {
  const lines = fs.readFileSync(path.join(dir, 'behaviors.tsv'), 'utf8').split('\n').filter((l) => l.trim());
  const time = (s: string) => {
    const [date, clock, ampm] = s.split(' ');
    const [mo, d, y] = date.split('/').map(Number);
    const [h, mi, se] = clock.split(':').map(Number);
    return Date.UTC(y, mo - 1, d, (h % 12) + (ampm === 'PM' ? 12 : 0), mi, se);
  };
  const first = new Map<string, { t: number; line: number; history: string[] }>();
  const clicks = new Map<string, Array<{ t: number; line: number; pos: number; news: string }>>();
  lines.forEach((l, line) => {
    const [, user, when, history, impressions] = l.split('\t');
    const t = time(when);
    const f = first.get(user);
    if (!f || t < f.t) first.set(user, { t, line, history: history.split(' ').filter(Boolean) });
    if (!clicks.has(user)) clicks.set(user, []);
    impressions.split(' ').forEach((tok, pos) => {
      if (tok.endsWith('-1')) clicks.get(user)!.push({ t, line, pos, news: tok.slice(0, -2) });
    });
  });
  const seqs = new Map<string, string[]>();
  for (const [user, f] of first) {
    const cs = clicks.get(user)!.sort((a, b) => a.t - b.t || a.line - b.line || a.pos - b.pos);
    const seen = new Set<string>();
    const out: string[] = [];
    for (const c of cs) {
      const key = `${c.news}@${c.t}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(c.news);
    }
    seqs.set(user, [...f.history, ...out]);
  }
  const titles = new Map<string, string>();
  for (const l of fs.readFileSync(path.join(dir, 'news.tsv'), 'utf8').split('\n')) {
    const f = l.split('\t');
    if (f.length > 4) titles.set(f[0], f[3]);
  }
  return { seqs, titles };
}

test('MIND sample: users, items, interactions, unresolved ids and texts match the documented rule recomputed from the raw files', async () => {
  const { seqs, titles } = mindByHand(MIND);
  const raw = await loadRaw(MIND);
  assert.equal(raw.format, 'mind');
  assert.deepEqual(seqsOf(raw), seqs, 'every sequence: history of the earliest impression, then clicks in time order');
  const all = [...seqs.values()].flat();
  const unresolved = new Set(all.filter((x) => !titles.has(x)));
  assert.deepEqual(raw.report.unresolved && { ids: raw.report.unresolved.ids, interactions: raw.report.unresolved.interactions }, {
    ids: unresolved.size,
    interactions: all.filter((x) => unresolved.has(x)).length,
  });

  const d = await prepareDataset(MIND, { cacheDir: false, maxLen: 20 });
  const want = protocol(seqs, 5, 20);
  assert.deepEqual({ users: d.sequences.users, items: d.sequences.numItems, interactions: d.sequences.items.length }, { users: want.kept.size, items: want.items.size, interactions: want.interactions });
  assert.deepEqual(seqsOf({ ...d, ...d.sequences }), want.kept);
  // the numbers, for the record (README): 4,637 users read, 4,237 kept; 12,283 items; 73,099 interactions
  assert.deepEqual([d.report.usersRead, d.sequences.users, d.sequences.numItems, d.sequences.items.length], [4637, 4237, 12283, 73099]);
  assert.deepEqual([d.report.unresolved?.ids, d.report.unresolved?.interactions], [16990, 140945]);
  // texts: the news title where news.tsv lists the id, null (never '') where it does not
  assert.ok(d.text);
  const withText = [...want.items].filter((x) => titles.has(x)).length;
  assert.equal(d.report.itemsWithText, withText);
  assert.equal(withText, 438);
  d.itemIds.forEach((id, i) => assert.equal(d.text![i], titles.has(id) ? titles.get(id)!.trim() : null, id));
  assert.ok(!d.text.includes(''));
  // most ids are unresolved: a loud warning, but nothing was dropped
  assert.equal(d.report.dropWarning, false);
  const lines = formatLoadReport(d.report);
  assert.ok(lines.some((l) => /^WARNING: 140945 of 146474 interactions \(96\.2%\) name one of 16990 item ids without a row in news\.tsv/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^unresolved ids: 16990 item ids \(140945 interactions; e\.g\. N138, N64727, N27288\) have no row in news\.tsv: kept as items without text/.test(l)));
  assert.ok(lines.some((l) => /^behaviors\.tsv: 5000 impressions of 4637 users \(327 on more than one/.test(l)));
  // strict refuses unresolved ids; a text tower refuses items without text
  await assert.rejects(prepareDataset(MIND, { cacheDir: false, strict: true }), isMorec('EFORMAT', /strict: .*16990 item ids \(140945 interactions; e\.g\. 'N138', 'N64727', 'N27288'\) have no row in news\.tsv/));
  assert.throws(() => prepareTextTower(d, { workDir: tmpdir() }), /has no text/);
  // behaviors.tsv named directly is its folder
  const direct = await prepareDataset(path.join(MIND, 'behaviors.tsv'), { cacheDir: false, maxLen: 20 });
  assert.equal(direct.fingerprint, d.fingerprint);
  assert.equal(direct.name, 'mind-sample');
});

test('MIND: title + abstract as an option; merged users, duplicates, conflicting histories and unlabelled impressions', async () => {
  const dir = tmpdir();
  const behaviors = [
    '1\tU1\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN5-0 N6-1 N7-1',
    '2\tU2\t11/12/2019 9:00:00 AM\t\tN6-1',
    '3\tU1\t11/11/2019 11:59:59 PM\tN1 N2 N1\tN8-1 N5-0',
    '4\tU1\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN5-0 N6-1 N7-1', // line 1 again: both clicks are duplicates
    '5\tU2\t11/12/2019 12:00:00 PM\t\tN9-1 N1-1',
  ];
  fs.writeFileSync(path.join(dir, 'behaviors.tsv'), behaviors.join('\n') + '\n');
  const news = ['N1\tnews\tx\tFirst title\tIts abstract\turl\t[]\t[]', 'N6\tnews\tx\tWhat now?\tAn answer.\turl\t[]\t[]', 'N7\tnews\tx\t \t\turl\t[]\t[]', 'N99\tnews\tx\tUnread\t\turl\t[]\t[]'];
  fs.writeFileSync(path.join(dir, 'news.tsv'), news.join('\n') + '\n');
  const raw = await loadRaw(dir);
  // U1: history, then clicks by time: N8 (11/11 11:59:59 PM), then N6, N7 (11/12 2:14:46 PM); line 4 repeats line 1
  assert.deepEqual(seqsOf(raw), new Map([['U1', ['N1', 'N2', 'N1', 'N8', 'N6', 'N7']], ['U2', ['N6', 'N9', 'N1']]]));
  assert.equal(raw.report.duplicatesFound, 2);
  assert.equal(raw.report.firstDuplicate, "behaviors.tsv:4 repeats line 1 (user 'U1', news 'N6', time 2019-11-12T14:14:46.000Z)");
  assert.equal(raw.report.rowsRead, 3 + 5 + 0 + 3, 'U1: 3 history items + 5 clicks read (3 kept); U2: no history, 3 clicks');
  const text = Object.fromEntries(raw.itemIds.map((id, i) => [id, raw.text![i]]));
  assert.deepEqual(text, { N1: 'First title', N2: null, N8: null, N6: 'What now?', N7: null, N9: null }, 'an empty title is no text');
  assert.deepEqual(raw.report.unresolved, { table: 'news.tsv', ids: 3, interactions: 3, examples: ['N2', 'N8', 'N9'] });
  const both = await loadRaw(dir, { itemText: 'title+abstract' });
  assert.equal(both.text![both.itemIds.indexOf('N1')], 'First title. Its abstract');
  assert.equal(both.text![both.itemIds.indexOf('N6')], 'What now? An answer.');
  const kept = await loadRaw(dir, { keepDuplicates: true });
  assert.deepEqual(seqsOf(kept).get('U1'), ['N1', 'N2', 'N1', 'N8', 'N6', 'N7', 'N6', 'N7']);

  // a history that differs between a user's impressions: the earliest one's is used, and that is a guess
  fs.writeFileSync(path.join(dir, 'behaviors.tsv'), behaviors.slice(0, 3).join('\n') + '\n6\tU1\t11/10/2019 1:00:00 AM\tN3\tN4-1\n');
  const conflict = await loadRaw(dir);
  assert.deepEqual(seqsOf(conflict).get('U1'), ['N3', 'N4', 'N8', 'N6', 'N7']);
  assert.deepEqual(conflict.report.guessed, [
    "behaviors.tsv: 1 impressions carry a history different from another impression of the same user (first: behaviors.tsv:4 and line 3 (user 'U1')); each user's history was taken from their earliest impression",
  ]);
  // errors name file and line
  fs.writeFileSync(path.join(dir, 'behaviors.tsv'), '1\tU1\t11/12/2019 2:14:46 PM\tN1\tN5 N6\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /behaviors\.tsv:1: impression 'N5' has no click label \(-1 clicked, -0 not\); MIND's test split has no labels/));
  fs.writeFileSync(path.join(dir, 'behaviors.tsv'), '1\tU1\t2019-11-12 14:14\tN1\tN5-1\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /behaviors\.tsv:1: unparsable time '2019-11-12 14:14' \(expected MIND's M\/D\/YYYY h:mm:ss AM\|PM\)/));
  fs.writeFileSync(path.join(dir, 'behaviors.tsv'), 'U1\tN1 N2\tN3-1\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /behaviors\.tsv:1: expected 5 tab-separated columns/));
  assert.equal(parseMindTime('11/12/2019 12:00:00 AM'), Date.UTC(2019, 10, 12, 0, 0, 0) / 1000);
  assert.equal(parseMindTime('11/12/2019 12:30:00 PM'), Date.UTC(2019, 10, 12, 12, 30, 0) / 1000);
  // itemText applies to MIND, H&M and IDvs.MoRec only
  const csv = path.join(dir, 'x.csv');
  fs.writeFileSync(csv, 'user,item,timestamp\nu,a,1\n');
  await assert.rejects(loadRaw(csv, { itemText: 'title+abstract' }), isMorec('EINVAL', /itemText 'title\+abstract' applies to MIND, H&M and IDvs\.MoRec data sets/));
});

/** H&M's rule written out: by customer, t_dat then file order, ids padded to 10 digits, (customer, article, day) once. */
function hmByHand(dir: string) {
  const rows = fs.readFileSync(path.join(dir, 'transactions_train.csv'), 'utf8').split('\n').slice(1).filter((l) => l.trim());
  const per = new Map<string, Array<{ day: string; n: number; article: string }>>();
  rows.forEach((l, n) => {
    const [day, customer, article] = l.split(',');
    if (!per.has(customer)) per.set(customer, []);
    per.get(customer)!.push({ day, n, article: article.padStart(10, '0') });
  });
  const seqs = new Map<string, string[]>();
  let duplicates = 0;
  for (const [c, rs] of per) {
    rs.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.n - b.n));
    const seen = new Set<string>();
    const out: string[] = [];
    for (const r of rs) {
      const key = `${r.article}@${r.day}`;
      if (seen.has(key)) {
        duplicates++;
        continue;
      }
      seen.add(key);
      out.push(r.article);
    }
    seqs.set(c, out);
  }
  // articles.csv: ",article_id,product_code,prod_name,..." -- the first four fields are never quoted
  const names = new Map<string, string>();
  for (const l of fs.readFileSync(path.join(dir, 'articles.csv'), 'utf8').split('\n').slice(1)) {
    const f = l.split(',');
    if (f.length > 3) names.set(f[1].padStart(10, '0'), f[3]);
  }
  const images = new Set(fs.readdirSync(path.join(dir, 'images')).map((f) => path.basename(f, '.jpg')));
  return { seqs, duplicates, rows: rows.length, names, images };
}

test('H&M sample: users, items, interactions, texts and images match the documented rule recomputed from the raw files', async () => {
  const hand = hmByHand(HM);
  const d = await prepareDataset(HM, { cacheDir: false, maxLen: 10 });
  assert.equal(d.format, 'hm');
  assert.equal(d.report.rowsRead, hand.rows);
  assert.equal(d.report.duplicatesDropped, hand.duplicates);
  assert.equal(d.report.usersRead, hand.seqs.size);
  const want = protocol(hand.seqs, 5, 10);
  assert.deepEqual(seqsOf({ ...d, ...d.sequences }), want.kept);
  assert.deepEqual([d.report.usersRead, d.sequences.users, d.sequences.numItems, d.sequences.items.length, d.report.duplicatesDropped], [2954, 574, 2958, 4235, 965]);
  assert.ok(d.itemIds.every((id) => /^\d{10}$/.test(id)), 'article ids are 10-digit strings');
  // every article is listed: no unresolved ids; texts are prod_name; images where images/<id>.jpg exists
  assert.equal(d.report.unresolved, undefined);
  d.itemIds.forEach((id, i) => assert.equal(d.text![i], hand.names.get(id), id));
  const withImage = d.itemIds.filter((id) => hand.images.has(id));
  assert.equal(d.report.itemsWithImage, withImage.length);
  assert.equal(withImage.length, 2);
  d.itemIds.forEach((id, i) => assert.equal(d.image![i], hand.images.has(id) ? path.join(HM, 'images', `${id}.jpg`) : null));
  // most customers bought fewer than 5 things that day: dropped, and the report says so loudly
  assert.equal(d.report.dropWarning, true);
  const lines = formatLoadReport(d.report);
  assert.ok(lines.includes('WARNING: 2380 of 2954 users (80.6%) dropped: fewer than 5 interactions'), lines.join('\n'));
  assert.ok(lines.includes('WARNING: 5579 of 10000 interactions (55.8%) dropped before the L + 3 window: 965 duplicates, 4614 of users below 5'));
  assert.ok(lines.includes('transactions_train.csv: 10000 article ids zero-padded to 10 digits (e.g. 663713001 -> 0663713001)'));
  assert.ok(lines.includes('items: 2958 of 2958 with text, 2 of 2958 with an image'));
  // title + abstract: prod_name. detail_desc
  const both = await prepareDataset(HM, { cacheDir: false, maxLen: 10, itemText: 'title+abstract' });
  assert.notEqual(both.fingerprint, d.fingerprint);
  const i = both.itemIds.indexOf(d.itemIds[0]);
  assert.ok(both.text![i]!.startsWith(`${hand.names.get(d.itemIds[0])}. `), both.text![i]!);
  // transactions_train.csv named directly is its folder
  const direct = await prepareDataset(path.join(HM, 'transactions_train.csv'), { cacheDir: false, maxLen: 10 });
  assert.equal(direct.fingerprint, d.fingerprint);
  assert.equal(direct.report.itemsWithImage, 2);
});

test('H&M: Kaggle image folders (images/010/0108775015.jpg), quoted multi-line descriptions, unlisted articles, header required', async () => {
  const dir = tmpdir();
  const tx = ['t_dat,customer_id,article_id,price,sales_channel_id'];
  for (const [day, c, a] of [['2020-09-02', 'c1', '108775015'], ['2020-09-01', 'c1', '0108775044'], ['2020-09-02', 'c1', '0108775015'], ['2020-09-03', 'c1', '111565001'], ['2020-09-01', 'c2', '111565001']])
    tx.push(`${day},${c},${a},0.01,2`);
  fs.writeFileSync(path.join(dir, 'transactions_train.csv'), tx.join('\n') + '\n');
  fs.writeFileSync(
    path.join(dir, 'articles.csv'),
    'article_id,prod_name,detail_desc\n0108775015,Strap top,"Jersey top, narrow\nshoulder straps."\n0108775044,"Strap top ""(1)""",\n0999999999,Unbought,x\n',
  );
  fs.mkdirSync(path.join(dir, 'images', '010'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'images', '010', '0108775015.jpg'), 'jpg');
  const raw = await loadRaw(dir, { itemText: 'title+abstract' });
  assert.deepEqual(seqsOf(raw), new Map([['c1', ['0108775044', '0108775015', '0111565001']], ['c2', ['0111565001']]]));
  assert.equal(raw.report.duplicatesDropped, 1, "'108775015' and '0108775015' on one day are the same article");
  assert.deepEqual(raw.text, ['Strap top. Jersey top, narrow\nshoulder straps.', 'Strap top "(1)"', null]);
  assert.deepEqual(raw.image, [path.join(dir, 'images', '010', '0108775015.jpg'), null, null]);
  assert.deepEqual(raw.report.unresolved, { table: 'articles.csv', ids: 1, interactions: 2, examples: ['0111565001'] });
  // adding an image changes the fingerprint (the prepared data set would otherwise keep the old image list)
  const before = await prepareDataset(dir, { cacheDir: false, minSeqLen: 1 });
  fs.writeFileSync(path.join(dir, 'images', '010', '0108775044.jpg'), 'jpg');
  const after = await prepareDataset(dir, { cacheDir: false, minSeqLen: 1 });
  assert.notEqual(after.fingerprint, before.fingerprint);
  assert.equal(after.report.itemsWithImage, 2);
  // the same id twice (flat and in a subfolder) is refused: which is the item's photo would be a guess
  fs.writeFileSync(path.join(dir, 'images', '0108775044.jpg'), 'jpg');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /two images for item '0108775044'/));
  fs.rmSync(path.join(dir, 'images', '0108775044.jpg'));
  // no header: the columns would be a guess (t_dat comes first in H&M), so it is an error
  fs.writeFileSync(path.join(dir, 'transactions_train.csv'), tx.slice(1).join('\n') + '\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /transactions_train\.csv:1: expected a header naming the columns \(t_dat, customer_id, article_id\) but the first row is '2020-09-02,c1,/));
  fs.writeFileSync(path.join(dir, 'transactions_train.csv'), tx[0] + '\n2020-09-01,c1,AB1234,0.1,1\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /transactions_train\.csv:2: article id 'AB1234' is not an H&M article id/));
  fs.writeFileSync(path.join(dir, 'transactions_train.csv'), tx.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'articles.csv'), 'article_id,prod_name\n0108775015,"never closed\n');
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /articles\.csv:2: a quoted field opened here is not closed before the end of the file/));
});

test('Bili in the official IDvs.MoRec layout: *_users.tsv, *_items.tsv (ids, optionally titles), covers in *_images/', async () => {
  const dir = tmpdir();
  const users = ['u1\tv1 v2 v3 v4 v5 v6', 'u2\tv2 v3 v4 v5 v7', 'u3\tv1 v7 v3', 'u1\tv1 v2 v3 v4 v5 v6'];
  fs.writeFileSync(path.join(dir, 'bili_users.tsv'), users.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'bili_items.tsv'), ['v1\tA cat video', 'v2', 'v3\t', 'v4\tGame review\tlong description', 'v5', 'v6', 'v7', 'v8\tnever watched'].join('\n') + '\n');
  fs.mkdirSync(path.join(dir, 'bili_images'));
  for (const id of ['v1', 'v2', 'v4', 'v6', 'v8']) fs.writeFileSync(path.join(dir, 'bili_images', `${id}.jpg`), 'jpg');
  const d = await prepareDataset(dir, { cacheDir: false, maxLen: 10 });
  assert.equal(d.format, 'idvsmorec');
  assert.deepEqual(seqsOf({ ...d, ...d.sequences }), new Map([['u1', ['v1', 'v2', 'v3', 'v4', 'v5', 'v6']], ['u2', ['v2', 'v3', 'v4', 'v5', 'v7']]]));
  assert.equal(d.report.duplicatesDropped, 1);
  assert.deepEqual(d.text, ['A cat video', null, null, 'Game review', null, null, null], 'an id-only line or an empty title is no text');
  assert.deepEqual(
    d.image,
    d.itemIds.map((id) => (['v1', 'v2', 'v4', 'v6'].includes(id) ? path.join(dir, 'bili_images', `${id}.jpg`) : null)),
  );
  assert.equal(d.report.itemsWithImage, 4);
  assert.equal(d.report.itemsWithText, 2);
  assert.ok(formatLoadReport(d.report).includes('bili_images/: 5 images; 4 of 7 items have one (the rest: no image)'));
  // an image folder named images/ wins; two *_images folders are ambiguous
  fs.mkdirSync(path.join(dir, 'hm_images'));
  await assert.rejects(loadRaw(dir), isMorec('EFORMAT', /more than one image folder \(.*bili_images.*hm_images.*\)/));
});

test('generic CSV: columns by header name; header-less or mislabelled files are refused or reported, never guessed silently', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'log.csv');
  // H&M-style names through the generic loader, columns in any order, extra columns ignored
  fs.writeFileSync(f, 'price,article_id,t_dat,customer_id\n0.1,a,2020-01-02,c\n0.1,b,2020-01-01,c\n');
  const named = await loadRaw(f);
  assert.deepEqual(seqsOf(named), new Map([['c', ['b', 'a']]]));
  assert.equal(named.report.headerDetected, 'yes (customer_id,article_id,t_dat)');
  // mislabelled: names that say nothing of users or items
  fs.writeFileSync(f, 'customer,product,time\nc,a,1\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /log\.csv:1: the header 'customer,product,time' names no user or item column \(recognised: user user\|user_id/));
  fs.writeFileSync(f, 'user,customer_id,item,timestamp\nc,c,a,1\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /log\.csv:1: the header names 'user' and 'customer_id': which is the user column is ambiguous/));
  // header-less: a row of words is data, whose timestamp does not parse
  fs.writeFileSync(f, 'visitor,thing,when\nc,a,1\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /log\.csv:1: unparsable timestamp 'when' \(expected a number or a date; a header must name its columns/));
  // header-less and parsable: loaded by position, which the report says, and strict refuses
  fs.writeFileSync(f, 'c,a,1\nc,b,2\nc,d,3\nc,e,4\nc,g,5\n');
  const guessed = await prepareDataset(f, { cacheDir: false });
  assert.deepEqual(guessed.report.guessed, ['log.csv: no header; columns taken by position as user, item, timestamp']);
  assert.ok(formatLoadReport(guessed.report).includes('guessed: log.csv: no header; columns taken by position as user, item, timestamp'));
  await assert.rejects(prepareDataset(f, { cacheDir: false, strict: true }), isMorec('EFORMAT', /strict: .*guessed log\.csv: no header; columns taken by position/));
});

test('warm-N: rare items removed, users re-filtered, repeated to a fixpoint; every interaction accounted for', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  // minSeqLen 3, warm 3. u5 is short from the start. Round 1 counts (u1-u4): a3 b3 c3 d3 e1 x1 w1 -> e, x, w
  // removed; u4 (d x w) keeps only d and is dropped. Round 2: d now has 2 -> removed. Round 3: a3 b3 c3, stop.
  fs.writeFileSync(f, 'u1 a b c d\nu2 a b c e\nu3 a b c d\nu4 d x w\nu5 y z\n');
  const d = await prepareDataset(f, { cacheDir: false, minSeqLen: 3, warm: 3 });
  assert.deepEqual(seqsOf({ ...d, ...d.sequences }), new Map([['u1', ['a', 'b', 'c']], ['u2', ['a', 'b', 'c']], ['u3', ['a', 'b', 'c']]]));
  const r = d.report;
  assert.deepEqual(
    [r.warm, r.warmItemsDropped, r.warmInteractionsDropped, r.usersDroppedByWarm, r.warmRounds, r.usersDropped, r.interactionsOfDroppedUsers, r.itemsDropped],
    [3, 4, 5, 1, 2, 2, 3, 6],
  );
  assert.equal(r.interactionsRead, r.warmInteractionsDropped + r.interactionsOfDroppedUsers + r.interactionsBeyondWindow + d.sequences.items.length);
  assert.ok(formatLoadReport(r).includes('warm-3: removed 4 items with fewer than 3 interactions (5 interactions) and then 1 users left below 3, 2 rounds to a fixpoint'));
  assert.equal(r.dropWarning, false);
  assert.deepEqual(d.options, { minSeqLen: 3, maxLen: 0, keepDuplicates: false, warm: 3 });
  // off, and a different N, are different data sets
  const off = await prepareDataset(f, { cacheDir: false, minSeqLen: 3 });
  assert.equal(off.sequences.users, 4);
  assert.equal(off.report.warm, 0);
  assert.ok(!formatLoadReport(off.report).some((l) => l.startsWith('warm-')));
  assert.notEqual(off.fingerprint, d.fingerprint);
  // the window applies after the fixpoint: counted on whole sequences, then each user keeps the last L + 3
  fs.writeFileSync(f, 'u1 a b c d e f\nu2 a b c d e f\nu3 q a b c d e\n');
  const w = await prepareDataset(f, { cacheDir: false, minSeqLen: 2, warm: 2, maxLen: 1 });
  assert.deepEqual(seqsOf({ ...w, ...w.sequences }), new Map([['u1', ['c', 'd', 'e', 'f']], ['u2', ['c', 'd', 'e', 'f']], ['u3', ['b', 'c', 'd', 'e']]]));
  assert.deepEqual([w.report.warmItemsDropped, w.report.interactionsBeyondWindow], [1, 5]);
  // nothing left is an error that names warm-N
  await assert.rejects(prepareDataset(f, { cacheDir: false, warm: 100 }), isMorec('EINVAL', /empty after filtering \(minSeqLen 5, warm-100: 7 items with fewer than 100 interactions removed in 1 rounds\)/));
  await assert.rejects(prepareDataset(f, { cacheDir: false, warm: -1 }), isMorec('EINVAL', /Expected a non-negative integer for warm but received -1/));
});

test('item buckets: new (0 training interactions), cold (1-9), warm (10+); each user target bucket per split', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) lines.push(`w${i} p a b v r`);
  for (let i = 0; i < 3; i++) lines.push(`c${i} q c d v r`);
  lines.push('n0 v r p a n');
  fs.writeFileSync(f, lines.join('\n') + '\n');
  const d = await prepareDataset(f, { cacheDir: false });
  // training prefixes (all but the last two): p 11, a 10, b 10, q 3, c 3, d 3, v 1, r 1, n 0
  const b = itemBuckets(d);
  const bucketOf = (id: string) => ['new', 'cold', 'warm'][b.bucket[d.itemIds.indexOf(id) + 1]];
  assert.deepEqual(Object.fromEntries(d.itemIds.map((id) => [id, bucketOf(id)])), { p: 'warm', a: 'warm', b: 'warm', v: 'cold', r: 'cold', q: 'cold', c: 'cold', d: 'cold', n: 'new' });
  assert.deepEqual(b.counts, { new: 1, cold: 5, warm: 3 });
  assert.equal(b.bucket[0], NO_BUCKET);
  const test_ = targetBuckets(d, 'test', b);
  assert.deepEqual(Array.from(test_), [...Array(13).fill(1), 0], 'r is cold; n is new');
  assert.deepEqual(Array.from(targetBuckets(d, 'valid', b)), [...Array(13).fill(1), 2], 'v is cold; a is warm');
  const strict = itemBuckets(d, { coldBelow: 11 });
  assert.deepEqual(strict.counts, { new: 1, cold: 7, warm: 1 });
});
