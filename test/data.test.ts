import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateSyntheticWorld, loadRaw, MorecError, prepareDataset, preprocess, Sequences } from '../lib';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-data-'));
}

function seqsOf(raw: { offsets: Int32Array; items: Int32Array; itemIds: string[]; userIds: string[] }): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  raw.userIds.forEach((u, i) => (out[u] = Array.from(raw.items.subarray(raw.offsets[i], raw.offsets[i + 1]), (x) => raw.itemIds[x - 1])));
  return out;
}

function isFormat(pattern: RegExp) {
  return (e: unknown) => e instanceof MorecError && pattern.test(e.message);
}

test('generic CSV: header detected, grouped by user, ordered by time (file order breaks ties), items file attached', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'interactions.csv'), 'user_id,item_id,timestamp\nu1,b,20\nu2,a,5\nu1,a,10\nu1,c,20\nu2,"x,y",2019-11-12T14:00:00Z\n');
  fs.writeFileSync(path.join(dir, 'items.csv'), 'item,title,image\na,"Alpha, the first",img/a.jpg\nb,Beta,\nc,Gamma,img/c.png\nzz,unused,\n');
  const raw = await loadRaw(dir);
  assert.deepEqual(seqsOf(raw), { u1: ['a', 'b', 'c'], u2: ['a', 'x,y'] });
  const text = Object.fromEntries(raw.itemIds.map((id, i) => [id, raw.text?.[i]]));
  assert.deepEqual(text, { a: 'Alpha, the first', b: 'Beta', c: 'Gamma', 'x,y': null });
  assert.equal(raw.image?.[raw.itemIds.indexOf('c')], path.join(dir, 'img', 'c.png'));
  assert.equal(raw.image?.[raw.itemIds.indexOf('b')], null);
});

test('generic TSV without header', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'log.tsv');
  fs.writeFileSync(f, 'u1\t7\t3\nu1\t8\t1\n');
  assert.deepEqual(seqsOf(await loadRaw(f)), { u1: ['8', '7'] });
});

test('malformed rows name the file and line', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'bad.csv');
  fs.writeFileSync(f, 'user,item,timestamp\nu1,a,1\nu1,b\n');
  await assert.rejects(loadRaw(f), isFormat(/bad\.csv:3: expected 3 columns \(user, item, timestamp\) but found 2/));
  fs.writeFileSync(f, 'user,item,timestamp\nu1,a,1\nu1,b,yesterday-ish\n');
  await assert.rejects(loadRaw(f), isFormat(/bad\.csv:3: unparsable timestamp 'yesterday-ish'/));
  fs.writeFileSync(f, 'user,item,timestamp\nu1,a,1\n\nu1,,2\n');
  await assert.rejects(loadRaw(f), isFormat(/bad\.csv:4: empty item id/));
  const lines = path.join(dir, 'users.txt');
  fs.writeFileSync(lines, '1 10 11\n2\n');
  await assert.rejects(loadRaw(lines), isFormat(/users\.txt:2: expected 'user item item \.\.\.' but the line has no items/));
});

test('one-user-a-line files (S3Rec / amazon-toys) load in order', async () => {
  const raw = await loadRaw(path.resolve(__dirname, '..', '..', '..', 'shared', 'data', 'amazon-toys'));
  assert.equal(raw.userIds.length, 19412);
  assert.equal(raw.itemIds.length, 11924);
  assert.equal(raw.items.length, 167597);
  assert.deepEqual(seqsOf(raw)['1'], ['1', '2', '3', '4', '5']);
});

test('Amazon atomic layout (amazon-scientific) loads sequences and titles; valid and test files agree', async () => {
  const dir = path.resolve(__dirname, '..', '..', '..', 'shared', 'data', 'amazon-scientific');
  const raw = await loadRaw(dir);
  assert.equal(raw.format, 'amazon-atomic');
  assert.equal(raw.userIds.length, 2928);
  assert.ok(raw.itemIds.length <= 1585 && raw.itemIds.length > 1500);
  assert.ok(raw.text && raw.text.every((t) => typeof t === 'string' && t.length > 0), 'every item has a title');
  assert.ok(raw.itemIds[0].startsWith('B'), 'items carry their ASINs');
});

test('Amazon atomic: unknown item ids and inconsistent splits are reported with file and line', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'X.item2index'), 'A1\t0\nA2\t1\nA3\t2\n');
  const header = 'user_id:token\titem_id_list:token_seq\titem_id:token\n';
  fs.writeFileSync(path.join(dir, 'X.test.inter'), header + '0\t0 1\t2\n1\t0 9\t1\n');
  fs.writeFileSync(path.join(dir, 'X.valid.inter'), header + '0\t0\t1\n');
  await assert.rejects(loadRaw(dir), isFormat(/X\.test\.inter:3: unknown item id '9'/));
  fs.writeFileSync(path.join(dir, 'X.test.inter'), header + '0\t0 1\t2\n');
  fs.writeFileSync(path.join(dir, 'X.valid.inter'), header + '0\t0\t2\n');
  await assert.rejects(loadRaw(dir), isFormat(/X\.valid\.inter:2: validation item does not match/));
});

test('IDvs.MoRec layout: users.tsv + items.tsv with titles', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'mind_users.tsv'), 'U1\tN1 N2 N3\nU2\tN3 N1\n');
  fs.writeFileSync(path.join(dir, 'mind_items.tsv'), 'N1\tTitle one\tabstract\nN2\tTitle two\t\nN3\tTitle three\tx\n');
  const raw = await loadRaw(dir);
  assert.equal(raw.format, 'idvsmorec');
  assert.deepEqual(seqsOf(raw), { U1: ['N1', 'N2', 'N3'], U2: ['N3', 'N1'] });
  assert.deepEqual(raw.text, ['Title one', 'Title two', 'Title three']);
  fs.writeFileSync(path.join(dir, 'mind_items.tsv'), 'N1\tTitle one\tabstract\n');
  await assert.rejects(loadRaw(dir), isFormat(/item 'N2' is not listed in .*mind_items\.tsv/));
  fs.writeFileSync(path.join(dir, 'mind_items.tsv'), 'N1\tTitle one\tabstract\n\tno id\n');
  await assert.rejects(loadRaw(dir), isFormat(/mind_items\.tsv:2: empty item id/));
  fs.writeFileSync(path.join(dir, 'mind_users.tsv'), 'U1\tN1 N2 N3\nU2\n');
  await assert.rejects(loadRaw(dir), isFormat(/mind_users\.tsv:2: expected 'user item item \.\.\.' but the line has no items/));
});

test('preprocessing: users below minSeqLen dropped, last L + 3 kept, unused items dropped and re-indexed', () => {
  const raw = Sequences.fromArrays([[1, 2, 3, 4], [5, 6, 7, 8, 9, 1, 2], [3, 4, 5, 6, 7]], 9);
  const p = preprocess(raw, { minSeqLen: 5, maxLen: 2 });
  assert.deepEqual(Array.from(p.keptUsers), [1, 2]);
  // user 1 keeps its last 5 = [7, 8, 9, 1, 2]; user 2 all 5 = [3, 4, 5, 6, 7]
  assert.deepEqual(Array.from(p.itemMap), [7, 8, 9, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(p.sequences.sequence(0)), [1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(p.sequences.sequence(1)), [6, 7, 8, 9, 1]);
  assert.equal(p.sequences.numItems, 9);
  assert.throws(() => preprocess(raw, { minSeqLen: 8 }), isFormat(/empty after filtering \(minSeqLen 8\)/));
});

test('prepared data sets are cached and rebuilt when a source file changes', async () => {
  const dir = tmpdir();
  const cacheDir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\n');
  const first = await prepareDataset(f, { cacheDir });
  assert.ok(first.cacheDir && fs.existsSync(path.join(first.cacheDir, 'items.i32')));
  const again = await prepareDataset(f, { cacheDir });
  assert.equal(again.fingerprint, first.fingerprint);
  assert.deepEqual(Array.from(again.sequences.items), Array.from(first.sequences.items));
  assert.deepEqual(Array.from(again.popularity), Array.from(first.popularity));
  // popularity counts the training prefixes only: a: 1 2 3, b: 2 3 4
  assert.deepEqual(Array.from(first.popularity), [0, 1, 2, 2, 1, 0, 0]);
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\nc 6 5 4 3 2\n');
  const changed = await prepareDataset(f, { cacheDir });
  assert.notEqual(changed.fingerprint, first.fingerprint);
  assert.equal(changed.sequences.users, 3);
  const otherOptions = await prepareDataset(f, { cacheDir, maxLen: 1 });
  assert.notEqual(otherOptions.fingerprint, changed.fingerprint);
  assert.equal(otherOptions.sequences.sequence(0).length, 4);
});

test('the synthetic world is deterministic per seed and different across seeds', () => {
  const a = generateSyntheticWorld({ seed: 7, scale: 0.25 });
  const b = generateSyntheticWorld({ seed: 7, scale: 0.25 });
  const c = generateSyntheticWorld({ seed: 8, scale: 0.25 });
  assert.deepEqual(Array.from(a.sequences.items), Array.from(b.sequences.items));
  assert.deepEqual(a.items.map((i) => i.title), b.items.map((i) => i.title));
  assert.notDeepEqual(Array.from(a.sequences.items.subarray(0, 50)), Array.from(c.sequences.items.subarray(0, 50)));
  assert.equal(a.sequences.users, 500);
  const cold = a.items.filter((i) => i.cold).length / a.items.length;
  assert.ok(cold > 0.1 && cold < 0.3, `cold share ${cold}`);
});

test('the synthetic world ships an image per item: 64x64 PNGs, identical per seed, topic colour dominant', async () => {
  const sharp = (await import('sharp')).default;
  const cacheDir = tmpdir();
  const d = await prepareDataset('synthetic', { synthetic: { seed: 3, scale: 0.1 }, cacheDir });
  assert.ok(d.image && d.image.length === d.sequences.numItems && d.image.every((p) => p && fs.existsSync(p)));
  const meta = await sharp(d.image[0] as string).metadata();
  assert.equal(meta.width, 64);
  assert.equal(meta.height, 64);
  assert.equal(meta.format, 'png');
  const again = await prepareDataset('synthetic', { synthetic: { seed: 3, scale: 0.1 }, cacheDir: tmpdir() });
  assert.ok(fs.readFileSync(again.image![0] as string).equals(fs.readFileSync(d.image[0] as string)));
  assert.ok(d.text && d.text.every((t) => typeof t === 'string' && t.split(' ').length >= 5));
});
