/**
 * Small images for the synthetic world's items (64x64 PNG, encoded with sharp): the main topic decides the
 * shape and its colour, the secondary topic the background tint, with jittered size and position and pixel
 * noise -- so images carry the same topic signal as titles, imperfectly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { seededRandom } from '../util/random';
import { SyntheticItem } from './synthetic';
import { cleanStaleTemps, tempSuffix } from './temps';

const SIZE = 64;
const PALETTE: Array<[number, number, number]> = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40],
];

function inside(shape: number, x: number, y: number, r: number): boolean {
  const ax = Math.abs(x), ay = Math.abs(y);
  switch (shape % 8) {
    case 0: return x * x + y * y <= r * r; // disc
    case 1: return ax <= r * 0.8 && ay <= r * 0.8; // square
    case 2: return y <= r * 0.7 && y >= -r + 2 * ax; // triangle
    case 3: return ax + ay <= r; // diamond
    case 4: { const d = x * x + y * y; return d <= r * r && d >= (r * 0.55) ** 2; } // ring
    case 5: return ax <= r && ay <= r && Math.floor((y + r) / (r / 3)) % 2 === 0; // horizontal stripes
    case 6: return (ax <= r * 0.3 && ay <= r) || (ay <= r * 0.3 && ax <= r); // cross
    default: return ax <= r && ay <= r * 0.35; // bar
  }
}

export function drawItemImage(item: SyntheticItem, seed: number): Buffer {
  const r = seededRandom(seed);
  const [fg, bg] = [PALETTE[item.topics[0] % PALETTE.length], PALETTE[item.topics[1] % PALETTE.length]];
  const radius = 14 + r() * 12;
  const cx = SIZE / 2 + (r() - 0.5) * 16, cy = SIZE / 2 + (r() - 0.5) * 16;
  const px = Buffer.alloc(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < SIZE; x++) {
      const on = inside(item.topics[0], x - cx, y - cy, radius);
      for (let c = 0; c < 3; c++) {
        const base = on ? fg[c] : 255 - (255 - bg[c]) * 0.35;
        px[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (r() - 0.5) * 50)));
      }
    }
  return px;
}

/** Writes <dir>/<item id>.png for every item that has no image there yet; returns the paths in item order. */
export async function renderSyntheticImages(items: SyntheticItem[], dir: string, seed: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  cleanStaleTemps(dir);
  const paths = items.map((it) => path.join(dir, `${it.id}.png`));
  const todo = items.map((_, i) => i).filter((i) => !fs.existsSync(paths[i]));
  for (let b = 0; b < todo.length; b += 64) {
    await Promise.all(
      todo.slice(b, b + 64).map(async (i) => {
        const tmp = paths[i] + tempSuffix();
        await sharp(drawItemImage(items[i], seed * 1000003 + i), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(tmp);
        fs.renameSync(tmp, paths[i]);
      }),
    );
  }
  return paths;
}
