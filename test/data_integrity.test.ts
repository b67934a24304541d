/**
 * Data integrity: each test is a regression test for a probe of the "Trustworthy results" issue -- duplicates
 * that inflated metrics, rows lost to header guessing, damaged caches served as valid, leftovers of interrupted
 * builds, devices read forever, ids wrapped to 32 bits, fs errors without a code.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatLoadReport, loadRaw, metrics, MorecError, popularityRanks, prepareDataset, Sequences } from '../lib';
import { fsError } from '../lib/data/raw';
import { isMorec, rng } from './helpers';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-integrity-'));
}

function seqsOf(raw: { offsets: Int32Array; items: Int32Array; itemIds: string[]; userIds: string[] }): Array<[string, string[]]> {
  return raw.userIds.map((u, i) => [u, Array.from(raw.items.subarray(raw.offsets[i], raw.offsets[i + 1]), (x) => raw.itemIds[x - 1])]);
}

/** 30 users x 8 interactions at times 1..8 over 40 items, drawn at random (items may recur within a user). */
function randomRows(): string[] {
  const r = rng(11);
  const rows: string[] = [];
  for (let u = 0; u < 30; u++) for (let k = 0; k < 8; k++) rows.push(`u${u},i${Math.floor(r() * 40)},${k + 1}`);
  return rows;
}

test('probe: every row written twice gives the same prepared sequences and metrics; the report counts the drops', async () => {
  const rows = randomRows();
  const once = path.join(tmpdir(), 'interactions.csv');
  const twice = path.join(tmpdir(), 'interactions.csv');
  fs.writeFileSync(once, 'user,item,timestamp\n' + rows.join('\n') + '\n');
  fs.writeFileSync(twice, 'user,item,timestamp\n' + rows.join('\n') + '\n' + rows.join('\n') + '\n');
  const a = await prepareDataset(once, { cacheDir: false });
  const b = await prepareDataset(twice, { cacheDir: false });
  assert.deepEqual(Array.from(b.sequences.offsets), Array.from(a.sequences.offsets));
  assert.deepEqual(Array.from(b.sequences.items), Array.from(a.sequences.items));
  assert.deepEqual(b.itemIds, a.itemIds);
  assert.deepEqual(b.userIds, a.userIds);
  assert.deepEqual(Array.from(b.popularity), Array.from(a.popularity));
  const ma = metrics(popularityRanks(a.sequences, 'test'), [10]);
  const mb = metrics(popularityRanks(b.sequences, 'test'), [10]);
  assert.deepEqual(mb, ma);
  assert.equal(ma['HR@10'], 0.4);
  assert.equal(a.report.duplicatesDropped, 0);
  assert.equal(b.report.rowsRead, 480);
  assert.equal(b.report.duplicatesFound, 240);
  assert.equal(b.report.duplicatesDropped, 240);
  assert.equal(b.report.interactionsRead, 240);
  assert.equal(b.report.firstDuplicate, "interactions.csv:242 repeats line 2 (user 'u0', item 'i20', timestamp 1)");
  assert.equal(a.report.consecutiveRepeats, 9);
  assert.equal(b.report.consecutiveRepeats, 9);

  // keepDuplicates keeps them: every item twice in a row, every test item equal to its validation item
  const kept = await prepareDataset(twice, { cacheDir: false, keepDuplicates: true });
  assert.equal(kept.sequences.items.length, 480);
  assert.equal(kept.report.duplicatesFound, 240);
  assert.equal(kept.report.duplicatesDropped, 0);
  assert.equal(kept.report.consecutiveRepeats, 240 + a.report.consecutiveRepeats);
  assert.equal(kept.report.testRepeatsValidation, 30);
  assert.equal(metrics(popularityRanks(kept.sequences, 'test'), [10])['HR@10'], 14 / 30, 'kept duplicates inflate the baseline');

  // strict: the drop is an error naming the first duplicate; with keepDuplicates nothing is dropped
  await assert.rejects(
    prepareDataset(twice, { cacheDir: false, strict: true }),
    isMorec('EFORMAT', /^strict: .*interactions\.csv: 240 duplicate interactions dropped \(same user, item and timestamp; first: interactions\.csv:242 repeats line 2/),
  );
  await prepareDataset(twice, { cacheDir: false, strict: true, keepDuplicates: true });
});

test('duplicates are (user, item, timestamp) even when equal times interleave items; consecutive repeats are counted, not dropped', async () => {
  const f = path.join(tmpdir(), 'log.csv');
  // u1 at time 1: a, b, a (the second a repeats line 2), then "5.0" is the same time as "5"; u2 has a true repeat a, a at times 1 and 2
  fs.writeFileSync(f, 'user,item,timestamp\nu1,a,1\nu1,b,1\nu1,a,1\nu1,c,5\nu1,c,5.0\nu1,d,6\nu1,e,7\nu2,a,1\nu2,a,2\nu2,b,3\nu2,c,4\nu2,d,5\n');
  const d = await prepareDataset(f, { cacheDir: false });
  assert.deepEqual(seqsOf({ ...d, ...d.sequences }), [['u1', ['a', 'b', 'c', 'd', 'e']], ['u2', ['a', 'a', 'b', 'c', 'd']]]);
  assert.equal(d.report.rowsRead, 12);
  assert.equal(d.report.duplicatesDropped, 2);
  assert.equal(d.report.firstDuplicate, "log.csv:4 repeats line 2 (user 'u1', item 'a', timestamp 1)");
  assert.equal(d.report.consecutiveRepeats, 1);
  assert.equal(d.report.testRepeatsValidation, 0);
});

test('user lines and atomic files: a repeated identical line is a duplicate (dropped); a different one for the same user is an error', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\na 1 2 3 4 5\n');
  const d = await prepareDataset(f, { cacheDir: false });
  assert.deepEqual(d.userIds, ['a', 'b']);
  assert.equal(d.report.rowsRead, 3);
  assert.equal(d.report.rowUnit, 'user lines');
  assert.equal(d.report.duplicatesDropped, 1);
  assert.equal(d.report.firstDuplicate, "seqs.txt:3 repeats line 1 (user 'a', 5 items)");
  const kept = await prepareDataset(f, { cacheDir: false, keepDuplicates: true });
  assert.deepEqual(kept.userIds, ['a', 'b', 'a']);
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\na 1 2 3 4 6\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /seqs\.txt:3: user 'a' appears on more than one line \(first on line 1\) with different items/));

  const at = tmpdir();
  fs.writeFileSync(path.join(at, 'X.test.inter'), '0\t1 2 3 4\t5\n1\t1 2 3 4\t5\n0\t1 2 3 4\t5\n');
  fs.writeFileSync(path.join(at, 'X.valid.inter'), '0\t1 2 3\t4\n1\t1 2 3\t4\n');
  const raw = await loadRaw(at);
  assert.deepEqual(raw.userIds, ['0', '1'], 'two users with identical sequences are two users; the repeated line of user 0 is dropped');
  assert.equal(raw.report.duplicatesDropped, 1);
  fs.writeFileSync(path.join(at, 'X.test.inter'), '0\t1 2 3 4\t5\n0\t1 2 3 4\t6\n');
  await assert.rejects(loadRaw(at), isMorec('EFORMAT', /X\.test\.inter:2: user '0' appears on more than one line \(first on line 1\) with different sequences/));
});

test('probe: a headerless CSV whose first row has a bad timestamp is an error naming file:1, not a header', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'x.csv');
  fs.writeFileSync(f, 'u1,a,notatime\nu1,b,2\nu1,c,3\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /x\.csv:1: unparsable timestamp 'notatime' \(expected a number or a date; a header must name its columns/));
  // a row of unknown names is data too
  fs.writeFileSync(f, 'a,b,c\nu1,b,2\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /x\.csv:1: unparsable timestamp 'c'/));
  // a header naming some known columns but not all
  fs.writeFileSync(f, 'user,item,rating\nu1,b,2\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /x\.csv:1: the header 'user,item,rating' names no timestamp column/));
  // headerless and valid: every row kept, the positional columns reported as guessed (an error when strict)
  fs.writeFileSync(f, 'u1,a,1\nu1,b,2\nu1,c,3\nu1,d,4\nu1,e,5\n');
  const d = await prepareDataset(f, { cacheDir: false });
  assert.equal(d.sequences.items.length, 5);
  assert.equal(d.report.headerDetected, 'none');
  assert.deepEqual(d.report.guessed, ['x.csv: no header; columns taken by position as user, item, timestamp']);
  await assert.rejects(prepareDataset(f, { cacheDir: false, strict: true }), isMorec('EFORMAT', /strict: .*x\.csv: guessed x\.csv: no header; columns taken by position/));
});

test('a header is found by its names, columns in any order (RecBole :type suffixes, a BOM, \\r line ends)', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'h.csv');
  fs.writeFileSync(f, '\ufeffItem_ID:token,rating:float,timestamp:float,user_id:token\r\na,5,2,u1\rb,4,1,u1\r\nc,3,3,u1\n');
  const raw = await loadRaw(f);
  assert.deepEqual(seqsOf(raw), [['u1', ['b', 'a', 'c']]]);
  assert.equal(raw.report.headerDetected, 'yes (user_id:token,Item_ID:token,timestamp:float)');
  assert.deepEqual(raw.report.guessed, []);
  fs.writeFileSync(f, 'user,item,time,timestamp\nu1,a,1,1\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /h\.csv:1: the header names 'time' and 'timestamp': which is the timestamp column is ambiguous/));
  // tabs in a .csv: the delimiter is a guess
  fs.writeFileSync(f, 'user\titem\ttimestamp\nu1\ta\t1\n');
  const tabbed = await loadRaw(f);
  assert.deepEqual(tabbed.report.guessed, ['h.csv:1: delimiter taken as tab in a .csv file (the first row has tabs)']);
});

test('probe: Amazon atomic files without header lines keep their first user; headers are recognised by form', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'X.test.inter'), '0\t1 2 3\t4\n1\t5 6 7\t8\n');
  fs.writeFileSync(path.join(dir, 'X.valid.inter'), '0\t1 2\t3\n1\t5 6\t7\n');
  fs.writeFileSync(path.join(dir, 'X.text'), '1\tfirst title\n2\tsecond\n');
  const raw = await loadRaw(dir);
  assert.deepEqual(seqsOf(raw), [['0', ['1', '2', '3', '4']], ['1', ['5', '6', '7', '8']]]);
  assert.equal(raw.report.headerDetected, 'none');
  assert.equal(raw.text?.[0], 'first title');
  const header = 'user_id:token\titem_id_list:token_seq\titem_id:token\n';
  fs.writeFileSync(path.join(dir, 'X.test.inter'), header + '0\t1 2 3\t4\n1\t5 6 7\t8\n');
  fs.writeFileSync(path.join(dir, 'X.text'), 'item_id:token\ttext:token_seq\n1\tfirst title\n');
  const withHeader = await loadRaw(dir);
  assert.deepEqual(seqsOf(withHeader), seqsOf(raw));
  assert.equal(withHeader.report.headerDetected, 'yes (user_id:token,item_id_list:token_seq,item_id:token)');
  assert.equal(withHeader.text?.[0], 'first title');
});

test('probe: a truncated or altered cached array is detected and rebuilt, and the summary says so; the report is cached', async () => {
  const dir = tmpdir();
  const cacheDir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\nb 2 3 4 5 6\nc 1 2\n');
  const first = await prepareDataset(f, { cacheDir });
  assert.equal(first.report.cache, 'built');
  const meta = JSON.parse(fs.readFileSync(path.join(first.cacheDir!, 'meta.json'), 'utf8'));
  assert.equal(meta.version, 2);
  assert.deepEqual(Object.keys(meta.arrays), ['offsets.i32', 'items.i32', 'popularity.i32']);
  assert.deepEqual(meta.arrays['popularity.i32'].bytes, 28);
  assert.match(meta.arrays['popularity.i32'].sha256, /^[0-9a-f]{64}$/);

  const hit = await prepareDataset(f, { cacheDir });
  assert.equal(hit.report.cache, 'hit (3 arrays verified, sha256)');
  assert.deepEqual({ ...hit.report, cache: '' }, { ...first.report, cache: '' });
  assert.equal(hit.report.duplicatesDropped, 1);
  assert.equal(hit.report.usersDropped, 1);
  // strict applies to a cached load as well
  await assert.rejects(prepareDataset(f, { cacheDir, strict: true }), isMorec('EFORMAT', /strict: .*1 duplicate user lines dropped .*seqs\.txt:3 repeats line 2/));

  fs.truncateSync(path.join(first.cacheDir!, 'popularity.i32'), 8);
  const rebuilt = await prepareDataset(f, { cacheDir });
  assert.equal(rebuilt.report.cache, 'rebuilt (popularity.i32 truncated: 8 of 28 bytes)');
  assert.deepEqual(Array.from(rebuilt.popularity), Array.from(first.popularity));
  assert.equal((await prepareDataset(f, { cacheDir })).report.cache, 'hit (3 arrays verified, sha256)');

  const items = path.join(first.cacheDir!, 'items.i32');
  const b = fs.readFileSync(items);
  b[4] ^= 1;
  fs.writeFileSync(items, b);
  const again = await prepareDataset(f, { cacheDir });
  assert.equal(again.report.cache, 'rebuilt (items.i32 sha256 mismatch)');
  assert.deepEqual(Array.from(again.sequences.items), Array.from(first.sequences.items));

  fs.writeFileSync(path.join(first.cacheDir!, 'meta.json'), '{"version": 2, "finger');
  assert.match((await prepareDataset(f, { cacheDir })).report.cache, /^rebuilt \(meta\.json unreadable/);
  assert.deepEqual(formatLoadReport(again.report), [
    'read 4 user lines (user-lines; header: none)',
    "duplicates: dropped 1 (a user's line repeated with the same items in the same order (no timestamps: repeated items within a line are kept)); first: seqs.txt:3 repeats line 2 (user 'b', 5 items); --keep-duplicates keeps them",
    'preprocessing: 3 users, 6 items, 12 interactions read; dropped 1 users with fewer than 5 interactions (2 interactions), 0 interactions before the window (none: maxLen 0), 0 items no longer used',
    "consecutive repeats (same item twice in a row, kept): 0; users whose test item repeats their validation item: 0",
    'cache: rebuilt (items.i32 sha256 mismatch)',
  ]);
});

test('probe: temp folders of interrupted cache builds are cleaned on the next prepare (dead pid, or older than an hour)', async () => {
  const dir = tmpdir();
  const cacheDir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  fs.writeFileSync(f, 'a 1 2 3 4 5\nb 2 3 4 5 6\n');
  const root = path.join(cacheDir, 'datasets');
  fs.mkdirSync(root, { recursive: true });
  // a pid that is not running: spawn a process and wait for it to end
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const live = process.ppid; // alive for the whole test
  const host = os.hostname();
  const make = (name: string, ageHours = 0) => {
    const p = path.join(root, name);
    fs.mkdirSync(p);
    fs.writeFileSync(path.join(p, 'items.i32'), 'partial');
    const t = new Date(Date.now() - ageHours * 3600e3);
    fs.utimesSync(p, t, t);
  };
  make(`seqs-0123456789abcdef.tmp-${dead}`); // the old naming, no host: this host's
  make(`seqs-1123456789abcdef.tmp-${host}-${dead}`);
  make(`seqs-2123456789abcdef.tmp-${host}-${live}`); // a build in progress: kept
  make(`seqs-3123456789abcdef.tmp-${host}-${live}`, 2); // in progress for 2 hours: stale
  make(`seqs-4123456789abcdef.tmp-otherhost-${dead}`); // another machine's, recent: kept
  const d = await prepareDataset(f, { cacheDir });
  assert.equal(d.report.cache, 'built; removed 3 stale temp folders of interrupted builds');
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.includes('.tmp-')).sort(), [`seqs-2123456789abcdef.tmp-${host}-${live}`, `seqs-4123456789abcdef.tmp-otherhost-${dead}`]);
});

test('probe: devices, FIFOs and sockets are refused with EINVAL before any read (no hang on /dev/zero)', async () => {
  const started = Date.now();
  await assert.rejects(prepareDataset('/dev/zero', { cacheDir: false }), isMorec('EINVAL', /^\/dev\/zero: is a character device; expected a regular file or a folder of data files$/));
  await assert.rejects(loadRaw('/dev/zero'), isMorec('EINVAL', /^\/dev\/zero: is a character device/));
  const dir = tmpdir();
  const fifo = path.join(dir, 'pipe.csv');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(prepareDataset(fifo, { cacheDir: false }), isMorec('EINVAL', /pipe\.csv: is a FIFO \(named pipe\)/));
  // inside a folder layout, too
  const inFolder = tmpdir();
  execFileSync('mkfifo', [path.join(inFolder, 'interactions.csv')]);
  await assert.rejects(prepareDataset(inFolder, { cacheDir: false }), isMorec('EINVAL', /interactions\.csv: is a FIFO/));
  const data = path.join(dir, 'x.csv');
  fs.writeFileSync(data, 'user,item,timestamp\nu1,a,1\n');
  await assert.rejects(prepareDataset(data, { cacheDir: false, itemsFile: '/dev/null' }), isMorec('EINVAL', /^\/dev\/null: is a character device/));
  assert.ok(Date.now() - started < 5000, 'refused at once');
});

test('probe: numeric-looking ids are kept as written, never wrapped to 32 bits', async () => {
  const dir = tmpdir();
  const f = path.join(dir, 'seqs.txt');
  fs.writeFileSync(f, 'a 1 2 1e12 4 5\nb 1000000000000 3 4 5 6\n');
  const d = await prepareDataset(f, { cacheDir: false });
  assert.deepEqual(d.itemIds, ['1', '2', '1e12', '4', '5', '1000000000000', '3', '6']);
  const csv = path.join(dir, 'i.csv');
  fs.writeFileSync(csv, 'user,item,timestamp\n1e12,1e12,1\n1e12,1000000000000,2\n1e12,3,3\n1e12,4,4\n1e12,5,5\n');
  const c = await prepareDataset(csv, { cacheDir: false });
  assert.deepEqual(c.userIds, ['1e12']);
  assert.deepEqual(c.itemIds, ['1e12', '1000000000000', '3', '4', '5']);
  // item indices given as numbers: out-of-range values are named as given
  assert.throws(() => Sequences.fromArrays([[1, 2, 1e12]], 3), isMorec('EINVAL', /^Expected item indices in 1\.\.3 but user 0 has item 1000000000000 at position 2$/));
  assert.throws(() => Sequences.fromArrays([[1, 2.5]], 3), isMorec('EINVAL', /has item 2\.5 at position 1/));
});

test('probe: fs failures are MorecErrors with a code and the path (ENOENT, EACCES -> EIO, folder for a file -> EINVAL)', async () => {
  await assert.rejects(prepareDataset('/nonexistent/data.csv', { cacheDir: false }), isMorec('ENOENT', /existing file or folder for dataset but received '\/nonexistent\/data\.csv'/));
  const dir = tmpdir();
  const data = path.join(dir, 'interactions.csv');
  fs.writeFileSync(data, 'user,item,timestamp\nu1,a,1\n');
  await assert.rejects(prepareDataset(data, { cacheDir: false, itemsFile: path.join(dir, 'missing.csv') }), isMorec('ENOENT', /missing\.csv: no such file or folder/));
  await assert.rejects(prepareDataset(data, { cacheDir: false, itemsFile: dir }), isMorec('EINVAL', /: is a folder, expected a file/));
  const eacces = Object.assign(new Error("EACCES: permission denied, open '/x/y.csv'"), { code: 'EACCES' });
  const e = fsError(eacces, '/x/y.csv');
  assert.equal(e.code, 'EIO');
  assert.equal(e.message, '/x/y.csv: permission denied (EACCES): cannot read it');
  assert.equal(fsError(Object.assign(new Error('x'), { code: 'ENOENT' }), '/x/z').code, 'ENOENT');
  assert.equal(fsError(Object.assign(new Error('disk on fire'), { code: 'EIO' }), '/x/z').message, '/x/z: cannot read (disk on fire)');
  // a cache that cannot be written: the data set is still served, and the report says why it was not cached
  const seqs = path.join(dir, 'seqs.txt');
  fs.writeFileSync(seqs, 'a 1 2 3 4 5\n');
  const uncached = await prepareDataset(seqs, { cacheDir: seqs });
  assert.equal(uncached.cacheDir, undefined);
  assert.match(uncached.report.cache, /^not written \(.*seqs\.txt\/datasets\/seqs-[0-9a-f]{16}: no such file or folder\)$/);
  if (process.getuid?.() !== 0) {
    // (root reads anything: this part runs for other users only)
    const locked = path.join(dir, 'locked.txt');
    fs.writeFileSync(locked, 'a 1 2 3 4 5\n');
    fs.chmodSync(locked, 0);
    await assert.rejects(prepareDataset(locked, { cacheDir: false }), isMorec('EIO', /locked\.txt: permission denied \(EACCES\)/));
  }
});

test('a line split across read chunks keeps its line number (\\r\\n on a 1 MiB boundary)', async () => {
  const f = path.join(tmpdir(), 'long.txt');
  let first = 'u1';
  for (let i = 0; first.length < (1 << 20) - 8; i++) first += ` ${i % 1000}`;
  first = first.padEnd((1 << 20) - 1, '9');
  fs.writeFileSync(f, first + '\r\nu2 1 2 3 4 5\r\nu3\r\n');
  await assert.rejects(loadRaw(f), isMorec('EFORMAT', /long\.txt:3: expected 'user item item \.\.\.' but the line has no items/));
});

test('morec data prints the load report; --strict fails on dropped duplicates, naming where', () => {
  const dir = tmpdir();
  const f = path.join(dir, 'interactions.csv');
  const rows = randomRows();
  fs.writeFileSync(f, 'user,item,timestamp\n' + rows.join('\n') + '\n' + rows.slice(0, 3).join('\n') + '\n');
  const cli = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');
  const env = { ...process.env, MOREC_CACHE: tmpdir() };
  const ok = spawnSync(process.execPath, [cli, 'data', '--dataset', f, '--quiet'], { encoding: 'utf8', env });
  assert.equal(ok.status, 0, ok.stderr);
  const s = JSON.parse(ok.stdout);
  assert.equal(s.load.duplicatesDropped, 3);
  assert.equal(s.load.rowsRead, 243);
  assert.match(s.loadReport[1], /^duplicates: dropped 3 \(same user, item and timestamp\); first: interactions\.csv:242 repeats line 2/);
  const strict = spawnSync(process.execPath, [cli, 'data', '--dataset', f, '--quiet', '--strict'], { encoding: 'utf8', env });
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /^EFORMAT: strict: .*3 duplicate interactions dropped .*interactions\.csv:242 repeats line 2/m);
  const kept = spawnSync(process.execPath, [cli, 'data', '--dataset', f, '--quiet', '--strict', '--keep-duplicates'], { encoding: 'utf8', env });
  assert.equal(kept.status, 0, kept.stderr);
  assert.equal(JSON.parse(kept.stdout).interactions, 243);
});
