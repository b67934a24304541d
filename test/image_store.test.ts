/**
 * The image store (lib/image): exact pixels (synthetic PNGs, real H&M photos against sharp run independently
 * and against Pillow itself), the missing/corrupt policies, abort/kill -9 and resume, reuse and rebuild, flat
 * memory on 10,000 images, option and file validation.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { MorecError } from '../lib/errors';
import {
  describeImageStatus,
  droppedItems,
  formatImageStoreReport,
  IMAGE_STATUS,
  ImageStore,
  ImageStoreOptions,
  openImageStore,
  prepareImageStore,
  resizeBilinearPil,
} from '../lib/image';
import { seededRandom } from '../lib/util/random';

const SHARED = path.resolve(__dirname, '..', '..', '..', 'shared', 'data');
const HM_IMAGES = path.join(SHARED, 'hm-sample', 'images');
const PYTHON = '/usr/bin/python3';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'morec-images-'));
}

function isMorec(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MorecError, `expected a MorecError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/** Deterministic RGB noise with some structure, HWC. */
function pattern(seed: number, width: number, height: number): Buffer {
  const r = seededRandom(seed);
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) px[(y * width + x) * 3 + c] = ((x * (7 + c) + y * (3 + seed)) & 255) ^ Math.floor(r() * 64);
  return px;
}

async function writePng(file: string, px: Buffer, width: number, height: number, channels: 1 | 3 | 4 = 3): Promise<void> {
  await sharp(px, { raw: { width, height, channels } }).png().toFile(file);
}

function row(store: ImageStore, i: number): Buffer {
  const fd = fs.openSync(store.file, 'r');
  try {
    const buf = Buffer.alloc(store.rowBytes);
    fs.readSync(fd, buf, 0, store.rowBytes, i * store.rowBytes);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function hwcToChw(px: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.alloc(px.length);
  const plane = width * height;
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = px[p * 3 + c];
  return out;
}

function sha256(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** index.json without its creation time (which differs between two builds of the same inputs). */
function indexOf(dir: string): Record<string, unknown> {
  const j = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  delete j.created;
  return j;
}

function quiet(lines: string[] = []): ImageStoreOptions {
  return { log: (l) => lines.push(l) };
}

/** n synthetic PNGs of side `side` in `dir`; returns their paths and pixels (HWC). */
async function syntheticPngs(dir: string, n: number, side: number, seed = 1): Promise<{ paths: string[]; pixels: Buffer[] }> {
  const paths: string[] = [], pixels: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const px = pattern(seed * 1000 + i, side, side);
    const p = path.join(dir, `img${String(i).padStart(3, '0')}.png`);
    await writePng(p, px, side, side);
    paths.push(p);
    pixels.push(px);
  }
  return { paths, pixels };
}

test('round trip: PNGs at exactly size x size are stored exactly, CHW, row 0 zeros', async () => {
  const dir = tmpdir();
  const size = 24;
  const { paths, pixels } = await syntheticPngs(dir, 5, size);
  // greyscale: 3 equal planes; RGBA: alpha dropped without compositing (the RGB under transparency is kept)
  const grey = pattern(77, size, size).subarray(0, size * size);
  await writePng(path.join(dir, 'grey.png'), grey, size, size, 1);
  const rgba = Buffer.alloc(size * size * 4);
  const rgb = pattern(78, size, size);
  for (let p = 0; p < size * size; p++) {
    rgba[p * 4] = rgb[p * 3];
    rgba[p * 4 + 1] = rgb[p * 3 + 1];
    rgba[p * 4 + 2] = rgb[p * 3 + 2];
    rgba[p * 4 + 3] = p % 3 === 0 ? 0 : p % 3 === 1 ? 128 : 255;
  }
  await writePng(path.join(dir, 'rgba.png'), rgba, size, size, 4);
  const all = [...paths, path.join(dir, 'grey.png'), path.join(dir, 'rgba.png')];
  const greyHwc = Buffer.alloc(size * size * 3);
  for (let p = 0; p < size * size; p++) greyHwc.fill(grey[p], p * 3, p * 3 + 3);
  const expected = [...pixels, greyHwc, rgb];

  for (const resize of ['pil-bilinear', 'sharp-linear'] as const) {
    const store = await prepareImageStore(all, path.join(dir, `store-${resize}`), { size, resize, ...quiet() });
    assert.equal(store.numItems, all.length);
    assert.equal(store.rowBytes, 3 * size * size);
    assert.equal(fs.statSync(store.file).size, (all.length + 1) * store.rowBytes);
    assert.deepEqual(row(store, 0), Buffer.alloc(store.rowBytes), 'row 0 is the padding item: zeros');
    expected.forEach((px, i) => assert.deepEqual(row(store, i + 1), hwcToChw(px, size, size), `${resize}: item ${i + 1}`));
    assert.deepEqual(Array.from(store.status), [IMAGE_STATUS.PADDING, ...all.map(() => IMAGE_STATUS.OK)]);
    assert.deepEqual({ ...store.report, reused: false }, { ok: all.length, missing: 0, corrupt: 0, noImage: 0, blanked: 0, dropped: 0, resumed: 0, reused: false });
    assert.equal(fs.existsSync(path.join(store.dir, 'report.tsv')), false);
    assert.equal(fs.existsSync(path.join(store.dir, 'done.bits')), false, 'the progress file goes once the index is written');
    const opened = openImageStore(store.dir);
    assert.deepEqual(opened.status, store.status);
    assert.equal(opened.file, store.file);
    assert.match(formatImageStoreReport(store), new RegExp(`^images: 7 items 24x24 ${resize} \\(ok 7\\), .* built$`));
  }
});

test('resize: the Pillow BILINEAR port matches Pillow 9.4 output (golden values, enlarging and reducing)', () => {
  // Generated with Pillow 9.4: Image.frombytes('RGB', (7, 5), data).resize((w, h), Image.BILINEAR).tobytes().hex()
  const W = 7, H = 5;
  const src = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) src[(y * W + x) * 3 + c] = (x * 71 + y * 113 + c * 29 + x * y * c * 17) % 256;
  const golden: Array<[number, number, string]> = [
    [3, 3, '6d796d8da076768a8e8aac6497878b926a8b72acaf80907d8e687e'],
    [11, 4, '1c39563c5b5d69856d978da0adab8db1db4564914f4b696a79719d839bad86bdb3a0bd6f90b86182ad53b08a5aa777897570d5a2ac7eb2a36d9c3cb86e62794a8d3a8fac5e7eaf6271b16c9f9b8d96949f649aa5918467a1796f8a7fd4ae6daece5d82a8c5e271abc83592a963bfad79bd9a7d9975aa4c51a3453e569a4172648c922dc9'],
    [5, 9, '1835526e8ba8a6c33e3c597692afcc3e5c5f948a8a96b4666272797fa0a47c9e75d289587a9baaa09b7d5f866095ba649f94599282a5ad8582656c69a4cd4a50a266b7698eac608674528584b0608fa1838290919c7a8ab368a16e9d7fb1a39d5eaa8f8f8782d574b37dafc462b1aa8391798e6147865a9f86baee32b9b299826b8e4b24564a93'],
    [W, H, Buffer.from(src).toString('hex')],
  ];
  for (const [w, h, hex] of golden) assert.deepEqual(Buffer.from(resizeBilinearPil(src, W, H, w, h)), hwcToChw(Buffer.from(hex, 'hex'), w, h), `${W}x${H} -> ${w}x${h}`);
});

test('real photos (H&M sample): rows equal sharp run independently, and Pillow itself', async (t) => {
  const files = fs.readdirSync(HM_IMAGES).filter((f) => f.endsWith('.jpg')).sort().slice(0, 10).map((f) => path.join(HM_IMAGES, f));
  assert.equal(files.length, 10);
  const dir = tmpdir();
  const size = 224;

  const fast = await prepareImageStore(files, path.join(dir, 'sharp'), { size, resize: 'sharp-linear', ...quiet() });
  for (let i = 0; i < files.length; i++) {
    const { data, info } = await sharp(files[i], { ignoreIcc: true, failOn: 'warning' })
      .removeAlpha()
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false })
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [size, size, 3]);
    assert.deepEqual(row(fast, i + 1), hwcToChw(data, size, size), `sharp-linear: ${files[i]}`);
  }

  const exact = await prepareImageStore(files, path.join(dir, 'pil'), { size, ...quiet() });
  assert.equal(exact.resize, 'pil-bilinear');
  const hasPil = fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;
  if (!hasPil) {
    t.diagnostic(`${PYTHON} with PIL not found: the comparison with Pillow is skipped (the golden-value test still runs)`);
    return;
  }
  const script = [
    'import sys',
    'from PIL import Image',
    'size = int(sys.argv[1])',
    'for f in sys.argv[2:]:',
    // the paper's pipeline: Image.open(...).convert('RGB'), transforms.Resize((224, 224)) = PIL resize, BILINEAR
    '    sys.stdout.buffer.write(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR).tobytes())',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, String(size), ...files], { maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr?.toString());
  const rowBytes = 3 * size * size;
  assert.equal(r.stdout.length, files.length * rowBytes);
  for (let i = 0; i < files.length; i++)
    assert.deepEqual(row(exact, i + 1), hwcToChw(r.stdout.subarray(i * rowBytes, (i + 1) * rowBytes), size, size), `pil-bilinear vs Pillow: ${files[i]}`);
  // and the fast rule is close to Pillow, not equal (documented in lib/image/decode.ts)
  let sum = 0;
  for (let i = 1; i <= files.length; i++) {
    const a = row(fast, i), b = row(exact, i);
    for (let k = 0; k < a.length; k++) sum += Math.abs(a[k] - b[k]);
  }
  const mean = sum / (files.length * rowBytes);
  t.diagnostic(`sharp-linear vs Pillow on 10 H&M photos: mean |diff| ${mean.toFixed(2)} levels`);
  assert.ok(mean > 0 && mean < 8, `mean |diff| ${mean}`);
});

/** Three good PNGs and the bad cases, in one folder. */
async function badInputs(dir: string): Promise<{ paths: (string | null)[]; good: Buffer[] }> {
  const size = 16;
  const { paths, pixels } = await syntheticPngs(dir, 3, size, 5);
  const photo = fs.readFileSync(path.join(HM_IMAGES, fs.readdirSync(HM_IMAGES).sort()[0]));
  fs.writeFileSync(path.join(dir, 'truncated.jpg'), photo.subarray(0, Math.floor(photo.length * 0.6)));
  fs.writeFileSync(path.join(dir, 'text.jpg'), 'this is a text file, not a JPEG\n');
  fs.mkdirSync(path.join(dir, 'folder.jpg'));
  // items: 1 ok, 2 missing, 3 ok, 4 truncated, 5 no path, 6 text, 7 ok, 8 a folder
  return {
    paths: [paths[0], path.join(dir, 'missing.jpg'), paths[1], path.join(dir, 'truncated.jpg'), null, path.join(dir, 'text.jpg'), paths[2], path.join(dir, 'folder.jpg')],
    good: pixels,
  };
}

test("policy 'error': missing, no path, truncated, not an image: coded errors naming the item and the path", async () => {
  const dir = tmpdir();
  const { paths } = await badInputs(dir);
  const only = (i: number) => [paths[0], paths[i - 1]];
  const o = { size: 16, ...quiet() };
  await assert.rejects(prepareImageStore(only(2), path.join(dir, 's2'), o), isMorec('ENOENT', /item 2: image file .*missing\.jpg does not exist.*policy 'blank' or 'drop'/));
  await assert.rejects(prepareImageStore(only(4), path.join(dir, 's4'), o), isMorec('EFORMAT', /item 2: image file .*truncated\.jpg cannot be decoded \(.+\)/));
  await assert.rejects(prepareImageStore(only(5), path.join(dir, 's5'), o), isMorec('ENOENT', /item 2 has no image path \(paths\[1\] is null\)/));
  await assert.rejects(prepareImageStore(only(6), path.join(dir, 's6'), o), isMorec('EFORMAT', /item 2: image file .*text\.jpg cannot be decoded \(.*unsupported image format.*\)/i));
  await assert.rejects(prepareImageStore(only(8), path.join(dir, 's8'), o), isMorec('EFORMAT', /item 2: image file .*folder\.jpg cannot be decoded \(not a regular file\)/));
  assert.throws(() => openImageStore(path.join(dir, 's2')), isMorec('ENOENT', /index\.json does not exist/), 'a failed preparation leaves no index');
});

test("policy 'blank': grey rows, counted, warned, listed in report.tsv", async () => {
  const dir = tmpdir();
  const { paths, good } = await badInputs(dir);
  const lines: string[] = [];
  const store = await prepareImageStore(paths, path.join(dir, 'store'), { size: 16, policy: 'blank', log: (l) => lines.push(l) });
  const S = IMAGE_STATUS;
  assert.deepEqual(Array.from(store.status), [S.PADDING, S.OK, S.MISSING_BLANK, S.OK, S.CORRUPT_BLANK, S.NO_IMAGE_BLANK, S.CORRUPT_BLANK, S.OK, S.CORRUPT_BLANK]);
  const { reportFile, ...counts } = store.report;
  assert.deepEqual(counts, { ok: 3, missing: 1, corrupt: 3, noImage: 1, blanked: 5, dropped: 0, resumed: 0, reused: false });
  assert.equal(reportFile, path.join(store.dir, 'report.tsv'));
  const grey = Buffer.alloc(store.rowBytes, 128);
  for (const i of [2, 4, 5, 6, 8]) assert.deepEqual(row(store, i), grey, `item ${i} is mid-grey`);
  [1, 3, 7].forEach((i, k) => assert.deepEqual(row(store, i), hwcToChw(good[k], 16, 16)));
  const tsv = fs.readFileSync(reportFile!, 'utf8').trim().split('\n');
  assert.equal(tsv[0], 'item\tpath\treason\toutcome');
  assert.deepEqual(tsv.slice(1).map((l) => l.split('\t')[0]), ['2', '4', '5', '6', '8']);
  assert.match(tsv[1], /^2\t.*missing\.jpg\tmissing: no such file\tblank$/);
  assert.match(tsv[2], /^4\t.*truncated\.jpg\tcorrupt: .+\tblank$/);
  assert.match(tsv[3], /^5\t\tno-image: no path\tblank$/);
  assert.equal(lines.filter((l) => /^image store: item \d/.test(l)).length, 5, lines.join('\n'));
  assert.match(lines.at(-1)!, /5 of 8 items had no usable image \(1 missing, 3 corrupt, 1 without a path\): blank grey images; listed in .*report\.tsv/);
  assert.match(formatImageStoreReport(store), /ok 3; 1 missing, 3 corrupt, 1 without image -> 5 blank grey\).*; see .*report\.tsv$/);
  const opened = openImageStore(store.dir);
  assert.deepEqual(opened.status, store.status);
  assert.equal(opened.report.blanked, 5);
  assert.equal(opened.report.reportFile, reportFile);
  assert.deepEqual(describeImageStatus(opened.status[4]), { reason: 'corrupt', outcome: 'blank' });
});

test("policy 'drop': statuses say dropped, counted, rows zero, droppedItems lists them", async () => {
  const dir = tmpdir();
  const { paths } = await badInputs(dir);
  const store = await prepareImageStore(paths, path.join(dir, 'store'), { size: 16, policy: 'drop', ...quiet() });
  const S = IMAGE_STATUS;
  assert.deepEqual(Array.from(store.status), [S.PADDING, S.OK, S.MISSING_DROPPED, S.OK, S.CORRUPT_DROPPED, S.NO_IMAGE_DROPPED, S.CORRUPT_DROPPED, S.OK, S.CORRUPT_DROPPED]);
  assert.equal(store.report.dropped, 5);
  assert.equal(store.report.blanked, 0);
  assert.deepEqual(droppedItems(store), [2, 4, 5, 6, 8]);
  for (const i of [2, 4, 5, 6, 8]) assert.deepEqual(row(store, i), Buffer.alloc(store.rowBytes));
  assert.match(fs.readFileSync(store.report.reportFile!, 'utf8'), /\n6\t.*text\.jpg\tcorrupt: .*\tdropped\n/);
});

test('abort and resume: EABORT keeps the rows written; the rerun resumes and equals a clean build byte for byte', async () => {
  const dir = tmpdir();
  const { paths } = await syntheticPngs(dir, 40, 40, 9);
  const list = Array.from({ length: 150 }, (_, i) => (i % 37 === 5 ? path.join(dir, 'nope.png') : paths[(i * 7) % paths.length]));
  const o: ImageStoreOptions = { size: 32, policy: 'blank', concurrency: 3, ...quiet() };
  const clean = await prepareImageStore(list, path.join(dir, 'clean'), o);

  const target = path.join(dir, 'resumed');
  const controller = new AbortController();
  let seen = 0;
  await assert.rejects(
    prepareImageStore(list, target, { ...o, signal: controller.signal, onProgress: (done) => (seen = done) === 60 && controller.abort() }),
    isMorec('EABORT', /stopped by the AbortSignal after 6\d of 150 images; the rows written are kept/),
  );
  assert.ok(seen >= 60 && seen < 70, `${seen}`);
  assert.ok(fs.existsSync(path.join(target, 'done.bits')));
  assert.throws(() => openImageStore(target), isMorec('ENOENT', /preparation was interrupted; call prepareImageStore with the same inputs to finish it/));

  const progress: number[] = [];
  const store = await prepareImageStore(list, target, { ...o, onProgress: (d) => progress.push(d) });
  assert.equal(store.report.resumed, seen);
  assert.equal(progress[0], seen, 'progress starts at the resumed count');
  assert.equal(progress.at(-1), 150);
  assert.equal(progress.length, 150 - seen + 1);
  assert.equal(sha256(store.file), sha256(clean.file));
  assert.deepEqual(indexOf(target), indexOf(clean.dir));
  assert.equal(fs.readFileSync(path.join(target, 'report.tsv'), 'utf8'), fs.readFileSync(path.join(clean.dir, 'report.tsv'), 'utf8'));
  assert.deepEqual({ ...store.report, resumed: 0, reportFile: '' }, { ...clean.report, reportFile: '' });
  assert.match(formatImageStoreReport(store), new RegExp(`resumed after ${seen}`));
});

test('kill -9 during preparation: the next call resumes from the last saved progress and equals a clean build', async () => {
  const dir = tmpdir();
  const { paths } = await syntheticPngs(dir, 50, 48, 11);
  const list = Array.from({ length: 2500 }, (_, i) => paths[(i * 13) % paths.length]);
  const listFile = path.join(dir, 'list.json');
  fs.writeFileSync(listFile, JSON.stringify(list));
  const target = path.join(dir, 'killed');
  const lib = path.resolve(__dirname, '..', 'lib', 'image');
  const child = spawn(
    process.execPath,
    ['-e', `require(${JSON.stringify(lib)}).prepareImageStore(JSON.parse(require('fs').readFileSync(${JSON.stringify(listFile)}, 'utf8')), ${JSON.stringify(target)}, { size: 64, concurrency: 1 }).then(() => console.log('finished'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
  const progress = path.join(target, 'done.bits');
  for (let waited = 0; !fs.existsSync(progress) && child.exitCode === null && waited < 30_000; waited += 5) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', `the child finished before it could be killed (${out})`);
  assert.equal(fs.existsSync(path.join(target, 'index.json')), false);

  const store = await prepareImageStore(list, target, { size: 64, ...quiet() });
  assert.ok(store.report.resumed >= 256 && store.report.resumed < 2500, `resumed ${store.report.resumed}`);
  const clean = await prepareImageStore(list, path.join(dir, 'clean'), { size: 64, ...quiet() });
  assert.equal(sha256(store.file), sha256(clean.file));
  assert.deepEqual(indexOf(target), indexOf(clean.dir));
  assert.deepEqual(fs.readdirSync(target).sort(), ['index.json', 'pixels.u8'], 'no temp or progress file left behind');
});

test('reuse and rebuild: a finished store is reused untouched; a touched file, another size or policy rebuilds it', async () => {
  const dir = tmpdir();
  const { paths } = await syntheticPngs(dir, 6, 20, 3);
  const target = path.join(dir, 'store');
  const first = await prepareImageStore(paths, target, { size: 20, ...quiet() });
  assert.equal(first.report.reused, false);
  const before = fs.statSync(first.file);
  const indexBefore = fs.readFileSync(path.join(target, 'index.json'), 'utf8');

  const progress: number[] = [];
  const again = await prepareImageStore(paths, target, { size: 20, onProgress: (d, n) => progress.push(d, n), ...quiet() });
  assert.equal(again.report.reused, true);
  assert.deepEqual(progress, [6, 6]);
  assert.equal(fs.statSync(first.file).mtimeMs, before.mtimeMs, 'the pixel file is not rewritten');
  assert.equal(fs.statSync(first.file).ino, before.ino);
  assert.equal(fs.readFileSync(path.join(target, 'index.json'), 'utf8'), indexBefore);
  assert.match(formatImageStoreReport(again), /, reused$/);

  // touch one file: the fingerprint (size + mtime) changes
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(paths[2], later, later);
  const lines: string[] = [];
  const touched = await prepareImageStore(paths, target, { size: 20, log: (l) => lines.push(l) });
  assert.equal(touched.report.reused, false);
  assert.equal(touched.report.resumed, 0);
  assert.notEqual(touched.fingerprint, first.fingerprint);
  assert.match(lines.join('\n'), /rebuilding from scratch: the inputs changed \(image paths or files changed/);

  const resized = await prepareImageStore(paths, target, { size: 12, log: (l) => lines.push(l) });
  assert.equal(resized.report.reused, false);
  assert.equal(fs.statSync(resized.file).size, 7 * 3 * 12 * 12);
  assert.match(lines.at(-1)!, /size 20 -> 12/);
  const other = await prepareImageStore(paths, target, { size: 12, policy: 'blank', log: (l) => lines.push(l) });
  assert.equal(other.report.reused, false);
  assert.match(lines.at(-1)!, /policy 'error' -> 'blank'/);
  const fewer = await prepareImageStore(paths.slice(1), target, { size: 12, policy: 'blank', log: (l) => lines.push(l) });
  assert.equal(fewer.numItems, 5);
  assert.match(lines.at(-1)!, /6 -> 5 items/);
  assert.equal((await prepareImageStore(paths.slice(1), target, { size: 12, policy: 'blank', ...quiet() })).report.reused, true);

  // an interrupted preparation of other inputs is discarded, not resumed
  const controller = new AbortController();
  const list = [...paths, ...paths, ...paths];
  await assert.rejects(
    prepareImageStore(list, path.join(dir, 'mixed'), { size: 20, concurrency: 1, signal: controller.signal, onProgress: (d) => d === 4 && controller.abort(), ...quiet() }),
    isMorec('EABORT', /after 4 of 18/),
  );
  const mixed: string[] = [];
  const s = await prepareImageStore(list, path.join(dir, 'mixed'), { size: 24, log: (l) => mixed.push(l) });
  assert.equal(s.report.resumed, 0);
  assert.match(mixed.join('\n'), /done\.bits: left by an interrupted preparation of other inputs/);
});

test('options and files are validated with coded errors', async () => {
  const dir = tmpdir();
  const p = [path.join(dir, 'a.png')];
  const bad: Array<[unknown, RegExp]> = [
    [{ size: -3 }, /Expected a positive integer up to 4096 for size but received -3/],
    [{ size: 1.5 }, /for size but received 1\.5/],
    [{ size: '224' }, /for size but received '224'/],
    [{ policy: 'skip' }, /Expected one of 'error', 'blank', 'drop' for policy but received 'skip'/],
    [{ resize: 'bicubic' }, /for resize but received 'bicubic'/],
    [{ concurrency: 0 }, /for concurrency but received 0/],
    [{ onProgress: 3 }, /Expected a function for onProgress but received 3/],
    [{ signal: {} }, /Expected an AbortSignal for signal/],
    [{ sizes: 3 }, /Unknown option 'sizes' for prepareImageStore \(known: size, policy/],
  ];
  for (const [o, re] of bad) await assert.rejects(prepareImageStore(p, dir, o as ImageStoreOptions), isMorec('EINVAL', re));
  await assert.rejects(prepareImageStore('a.png' as never, dir), isMorec('EINVAL', /Expected an array of image paths for paths but received 'a.png'/));
  await assert.rejects(prepareImageStore([p[0], 7] as never, dir), isMorec('EINVAL', /for paths\[1\] \(item 2\) but received 7/));
  await assert.rejects(prepareImageStore(p, ''), isMorec('EINVAL', /Expected a folder path for dir but received ''/));
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(prepareImageStore(p, dir, { signal: aborted.signal }), isMorec('EABORT', /after 0 of 1 images/));

  // one preparation per folder at a time; a lock left by a dead process is taken over
  const { paths: few } = await syntheticPngs(dir, 4, 8, 4);
  const first = prepareImageStore(few, path.join(dir, 'busy'), { size: 8, ...quiet() });
  await assert.rejects(prepareImageStore(few, path.join(dir, 'busy'), { size: 8, ...quiet() }), isMorec('EBUSY', /busy: another preparation of this image store is running \(process \d+; .*\.lock\)/));
  await first;
  fs.writeFileSync(path.join(dir, 'busy', '.lock'), `${os.hostname()} 9999999`);
  assert.equal((await prepareImageStore(few, path.join(dir, 'busy'), { size: 8, ...quiet() })).report.reused, true);
  assert.equal(fs.existsSync(path.join(dir, 'busy', '.lock')), false);

  // openImageStore
  assert.throws(() => openImageStore(path.join(dir, 'nothing')), isMorec('ENOENT', /nothing.index\.json does not exist: .* holds no image store/));
  const { paths } = await syntheticPngs(dir, 3, 8);
  const store = await prepareImageStore(paths, path.join(dir, 'store'), { size: 8, ...quiet() });
  const indexFile = path.join(store.dir, 'index.json');
  const good = fs.readFileSync(indexFile, 'utf8');
  fs.truncateSync(store.file, store.rowBytes * 3);
  assert.throws(() => openImageStore(store.dir), isMorec('EFORMAT', /pixels\.u8: expected 768 bytes \(\(3 items \+ 1\) x 3 x 8 x 8\) but found 576/));
  const lines: string[] = [];
  const rebuilt = await prepareImageStore(paths, store.dir, { size: 8, log: (l) => lines.push(l) });
  assert.equal(rebuilt.report.reused, false, 'a damaged store is rebuilt');
  assert.match(lines.join('\n'), /rebuilding from scratch: it cannot be opened .*pixels\.u8: expected 768 bytes/);
  fs.writeFileSync(indexFile, '{"format": "morec-image-store", ');
  assert.throws(() => openImageStore(store.dir), isMorec('EFORMAT', /index\.json: not valid JSON/));
  fs.writeFileSync(indexFile, good.replace('"layout": "CHW"', '"layout": "HWC"'));
  assert.throws(() => openImageStore(store.dir), isMorec('EFORMAT', /index\.json: expected layout 'CHW' but found 'HWC'/));
  fs.writeFileSync(indexFile, good.replace('"status": "0111"', '"status": "0191"'));
  assert.throws(() => openImageStore(store.dir), isMorec('EFORMAT', /index\.json: expected status to be 4 digits/));
  fs.writeFileSync(indexFile, good.replace('"complete": true', '"complete": false'));
  assert.throws(() => openImageStore(store.dir), isMorec('EFORMAT', /index\.json: the store is not complete/));
});

test('10,000 images (50 distinct PNGs, size 128) build with flat memory', async (t) => {
  const dir = tmpdir();
  const { paths } = await syntheticPngs(dir, 50, 100, 21);
  const list = Array.from({ length: 10_000 }, (_, i) => paths[(i * 17) % 50]);
  const size = 128;
  // warm-up: sharp/libvips threads and caches, the resize coefficients, the JIT
  await prepareImageStore(paths, path.join(dir, 'warmup'), { size, ...quiet() });
  const rss = () => process.memoryUsage().rss;
  const before = rss();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rss())), 20);
  const t0 = Date.now();
  let store: ImageStore;
  try {
    store = await prepareImageStore(list, path.join(dir, 'big'), { size, onProgress: () => (peak = Math.max(peak, rss())), ...quiet() });
  } finally {
    clearInterval(timer);
  }
  const seconds = (Date.now() - t0) / 1000;
  const after = rss();
  const MB = 1 << 20;
  const allRows = (list.length * store.rowBytes) / MB;
  const line = `image store 10,000 x ${size}x${size}: ${seconds.toFixed(1)} s (${Math.round(list.length / seconds)} images/s); rss before ${(before / MB).toFixed(0)} MB, peak ${(peak / MB).toFixed(0)} MB (+${((peak - before) / MB).toFixed(0)}), after ${(after / MB).toFixed(0)} MB; all rows would be ${allRows.toFixed(0)} MB`;
  console.log(line);
  t.diagnostic(line);
  assert.equal(fs.statSync(store.file).size, 10_001 * store.rowBytes);
  assert.equal(store.report.ok, 10_000);
  assert.ok(peak - before < 150 * MB, `rss grew by ${((peak - before) / MB).toFixed(0)} MB (limit 150; holding every row would take ${allRows.toFixed(0)} MB)`);
  // spot-check: item i holds image (i - 1) * 17 % 50, the same bytes as the warm-up store's row
  const warm = openImageStore(path.join(dir, 'warmup'));
  for (const i of [1, 2, 5000, 10_000]) assert.deepEqual(row(store, i), row(warm, (((i - 1) * 17) % 50) + 1), `item ${i}`);
  fs.rmSync(dir, { recursive: true, force: true });
});
