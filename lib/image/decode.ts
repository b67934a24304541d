/**
 * One image file -> one row of the image store: size x size 8-bit RGB as channel planes (CHW).
 *
 * The paper's pipeline (IDvs.MoRec `dataset/HM/build_lmdb_hm.py` and `data_utils/dataset.py`) is
 * `Image.open(path).convert('RGB')`, then `transforms.Resize((224, 224))` (PIL bilinear, antialiased),
 * `ToTensor()`, `Normalize(0.5, 0.5)`. Here, with sharp (libvips) decoding:
 * - EXIF orientation is ignored (no `.rotate()`), as `Image.open` ignores it;
 * - embedded ICC profiles are ignored (`ignoreIcc`), as PIL ignores them;
 * - alpha is dropped without compositing (`removeAlpha()`), as `.convert('RGB')` drops it;
 * - greyscale and palette images become 3 channels (`toColourspace('srgb')`);
 * - a truncated or damaged file is an error (`failOn: 'warning'`), as PIL raises "image file is truncated";
 * - the image is stretched to size x size (no crop, aspect ratio not kept), as `Resize((224, 224))` does.
 * The decoded pixels equal PIL's for baseline/progressive JPEG, 8-bit PNG (RGB, RGBA, grey, palette) and WebP:
 * with the 'pil-bilinear' rule all 100 H&M sample photos and those synthetic cases (up to 1200x900) came out
 * byte-identical to Pillow 9.4. Known differences: CMYK JPEGs (libvips converts through a CMYK profile,
 * PIL inverts naively) and 16-bit PNGs (rounding to 8 bits).
 *
 * Two resize rules (the normalization to [-1, 1] is the encoder's, not the store's):
 * - 'pil-bilinear' (default): sharp decodes at full size, then lib/image/resize.ts resamples exactly as
 *   Pillow's BILINEAR does: byte-identical to the paper's PIL pipeline.
 * - 'sharp-linear': libvips resizes (kernel 'linear', the closest of sharp's kernels to PIL bilinear, with
 *   `fastShrinkOnLoad: false`). Not PIL's pixels: when reducing less than 4x, mean |diff| 0.2-0.4 levels
 *   (max 3-12, measured on noise); when enlarging (e.g. the H&M photos, 171 px wide -> 224) libvips samples on a different grid,
 *   mean |diff| 2.6 and up to 116 levels at edges on the H&M sample; alpha images are resized premultiplied
 *   before the alpha is dropped, and images 4x or more above the target are box-shrunk first.
 */
import sharp from 'sharp';
import { hwcToChw, resizeBilinearPil } from './resize';

export type ResizeRule = 'pil-bilinear' | 'sharp-linear';
export const RESIZE_RULES: readonly ResizeRule[] = ['pil-bilinear', 'sharp-linear'];

/** What each rule does, recorded in the store's index. */
export const RESIZE_RULE_TEXT: Record<ResizeRule, string> = {
  'pil-bilinear':
    'stretch to size x size (no crop); Pillow BILINEAR (antialiased triangle filter, 22-bit fixed point) ported exactly, as torchvision Resize((size, size)) on a PIL image',
  'sharp-linear': "stretch to size x size (no crop); libvips resize with kernel 'linear', fastShrinkOnLoad false (close to, not equal to, PIL bilinear)",
};

/** The decode steps, recorded in the store's index. */
export const DECODE_TEXT =
  "sharp/libvips: EXIF orientation ignored, ICC profile ignored, alpha dropped without compositing, grey/palette -> sRGB 3 channels, failOn 'warning' (truncated files are errors); rows are CHW uint8 (R, G, B planes)";

function decoder(input: string | Buffer): ReturnType<typeof sharp> {
  return sharp(input, { ignoreIcc: true, failOn: 'warning' }).removeAlpha().toColourspace('srgb');
}

/**
 * Decodes `input` (a file path or the file's bytes) into size x size RGB channel planes (3 * size * size bytes,
 * written into `out` when given). Rejects with sharp's error for unreadable, damaged or unsupported files.
 */
export async function decodeImage(input: string | Buffer, size: number, rule: ResizeRule = 'pil-bilinear', out?: Uint8Array): Promise<Uint8Array> {
  const rowBytes = 3 * size * size;
  const target = out ?? new Uint8Array(rowBytes);
  if (rule === 'pil-bilinear') {
    const { data, info } = await decoder(input).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3)
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels} (${data.length} bytes), not RGB`);
    return resizeBilinearPil(data, info.width, info.height, size, size, target);
  }
  const { data, info } = await decoder(input)
    .resize(size, size, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false })
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size || data.length !== rowBytes)
    throw new Error(`decoded to ${info.width}x${info.height}x${info.channels} (${data.length} bytes), not ${size}x${size}x3`);
  return hwcToChw(data, size, size, target);
}
