/**
 * Image store preparation speed on the H&M sample photos (100 JPEGs, at most 256 px, mostly 171x256), each
 * referenced --repeat times (default 10: 1,000 images), resized to --size (default 224):
 * - a plain sequential loop of sharp with the store's options, one image at a time (the baseline);
 * - a plain sequential loop of decodeImage (the store's decode + resize + CHW, without the store);
 * - prepareImageStore, both resize rules, default concurrency (os.availableParallelism());
 * - Pillow in a Python loop (`Image.open(f).convert('RGB').resize((224, 224), BILINEAR)`, the paper's
 *   pipeline), when /usr/bin/python3 has PIL.
 * The pipelines run in turn, --rounds times (default 3); each reports its best round, so a busy machine
 * (other jobs on the same cores) disturbs the comparison less.
 * Run: npx tsc -p . && node dist/bench/image_store.js [--repeat N] [--size N] [--concurrency N] [--rounds N]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeImage, prepareImageStore, ResizeRule } from '../lib/image';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const root = path.resolve(__dirname, '..', '..');
const images = path.resolve(arg('images', path.join(root, '..', 'shared', 'data', 'hm-sample', 'images')));
const repeat = Number(arg('repeat', '10'));
const size = Number(arg('size', '224'));
const concurrency = Number(arg('concurrency', String(os.availableParallelism())));
const rounds = Number(arg('rounds', '3'));

async function main(): Promise<void> {
  const files = fs.readdirSync(images).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort().map((f) => path.join(images, f));
  const list = Array.from({ length: files.length * repeat }, (_, i) => files[i % files.length]);
  const n = list.length;
  // best images/s and least CPU ms per image (user + system, all threads of this process) over the rounds
  const best = new Map<string, { rate: number; cpuMs: number }>();
  const time = async (name: string, run: () => Promise<void>) => {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    await run();
    const c = process.cpuUsage(c0);
    const rate = n / (Number(process.hrtime.bigint() - t0) / 1e9);
    const cpuMs = (c.user + c.system) / 1000 / n;
    const b = best.get(name);
    best.set(name, { rate: Math.max(b?.rate ?? 0, rate), cpuMs: Math.min(b?.cpuMs ?? Infinity, cpuMs) });
    console.error(`${name}: ${rate.toFixed(0)} images/s, ${cpuMs.toFixed(2)} CPU ms/image`);
  };
  // warm the page cache and libvips
  for (const f of files) await sharp(f).raw().toBuffer();

  for (let round = 0; round < rounds; round++) {
    await time('sharp, sequential loop (resize linear, same options)', async () => {
      for (const f of list)
        await sharp(f, { ignoreIcc: true, failOn: 'warning' })
          .removeAlpha()
          .toColourspace('srgb')
          .resize(size, size, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false })
          .raw()
          .toBuffer();
    });
    for (const rule of ['pil-bilinear', 'sharp-linear'] as ResizeRule[]) {
      await time(`decodeImage '${rule}', sequential loop`, async () => {
        const out = new Uint8Array(3 * size * size);
        for (const f of list) await decodeImage(f, size, rule, out);
      });
    }
    for (const rule of ['pil-bilinear', 'sharp-linear'] as ResizeRule[]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-bench-images-'));
      try {
        await time(`prepareImageStore '${rule}', concurrency ${concurrency}`, async () => {
          await prepareImageStore(list, dir, { size, resize: rule, concurrency, log: () => {} });
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const rows = [...best.entries()];
  const python = '/usr/bin/python3';
  if (fs.existsSync(python)) {
    const script = [
      'import sys, time',
      'from PIL import Image',
      'size = int(sys.argv[1]); files = sys.argv[2:]',
      'best, cpu = 0, 1e9',
      `for r in range(${rounds}):`,
      '    t, c = time.perf_counter(), time.process_time()',
      '    for f in files: Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR).tobytes()',
      '    best = max(best, len(files) / (time.perf_counter() - t)); cpu = min(cpu, (time.process_time() - c) * 1000 / len(files))',
      'print(best, cpu)',
    ].join('\n');
    const r = spawnSync(python, ['-c', script, String(size), ...list], { encoding: 'utf8' });
    const [rate, cpuMs] = r.stdout.trim().split(' ').map(Number);
    if (r.status === 0) rows.push(["Pillow, sequential loop (the paper's pipeline; reference)", { rate, cpuMs }]);
    else console.error(`Pillow reference skipped (${r.stderr.trim().split('\n').pop()})`);
  }

  const base = rows[0][1].rate;
  console.log(`\nImage store preparation, ${n} H&M photos (${files.length} files x ${repeat}) -> ${size}x${size}, best of ${rounds} rounds, ${os.availableParallelism()} cores, load average ${os.loadavg()[0].toFixed(1)}, sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}\n`);
  console.log('| pipeline | images/s | vs sharp loop | CPU ms/image |');
  console.log('|---|---:|---:|---:|');
  for (const [name, { rate, cpuMs }] of rows) console.log(`| ${name} | ${rate.toFixed(0)} | ${(rate / base).toFixed(2)}x | ${cpuMs.toFixed(2)} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
