/**
 * Per-item inputs of modality towers, handed to the native core once (like Sequences) and read there by the
 * encoder for every batch: each item's title as token ids, right-padded to maxTokens, each item's image as
 * uint8 pixels (3 x H x W, CHW), in memory or memory-mapped from a prepared image store, or each item's
 * frozen-encoder features (two-stage towers), in memory or memory-mapped from a feature cache. Row 0 = padding.
 */
import { invalid, toMorecError } from './errors';
import { loadAddon, NativeItemStore } from './native';
import { int32Array, positiveInt } from './validate';

export interface ItemTokens {
  numItems: number;
  maxTokens: number;
  /** (numItems + 1) x maxTokens token ids, row-major; row 0 is the padding item. */
  tokens: Int32Array;
  /** numItems + 1 real lengths (row 0: 0). */
  lengths: Int32Array;
}

/** What ItemStore.fromTexts needs of a tokenizer (lib/text's TextTokenizer has it). */
export interface TitleEncoder {
  padId: number;
  fingerprint: string;
  encodeAll(texts: (string | null)[], maxTokens: number, options?: { missingText?: 'error' | 'empty' }): { ids: Int32Array; lengths: Int32Array };
}

export interface ItemPixels {
  numItems: number;
  height: number;
  width: number;
  /** (numItems + 1) x 3 x height x width bytes, CHW per item; row 0 is the padding item. */
  pixels: Uint8Array;
}

/** A prepared image store's pixel file (lib/image): (numItems + 1) rows of 3 x height x width bytes. */
export interface ItemPixelFile {
  numItems: number;
  height: number;
  width: number;
  file: string;
}

/** Frozen-encoder features in memory: (numItems + 1) x dim float32, row-major; row 0 is the padding item. */
export interface ItemFeatures {
  numItems: number;
  dim: number;
  features: Float32Array;
}

/** A feature cache's matrix file (lib/features): (numItems + 1) rows of dim float32 or float16 values. */
export interface ItemFeatureFile {
  numItems: number;
  dim: number;
  file: string;
  dtype: 'float32' | 'float16';
}

export class ItemStore {
  readonly numItems: number;
  /** 'tokens' (text towers), 'images' (image towers) or 'features' (two-stage towers). */
  readonly kind: 'tokens' | 'images' | 'features';
  /** Feature stores: features per item. */
  readonly dim: number;
  readonly maxTokens: number;
  readonly tokens: Int32Array;
  readonly lengths: Int32Array;
  /** Image stores: pixels per side. */
  readonly height: number;
  readonly width: number;
  /** What made the tokens (tokenizer fingerprint, maxTokens), for caches and checkpoints. */
  readonly source: Record<string, unknown>;
  /** @internal */
  readonly native: NativeItemStore;

  constructor(t: ItemTokens | ItemPixels | ItemPixelFile | ItemFeatures | ItemFeatureFile, source: Record<string, unknown> = {}) {
    if (typeof t !== 'object' || t === null) throw invalid('an object with numItems, maxTokens, tokens, lengths', 'items', t);
    this.numItems = positiveInt(t.numItems, 'numItems');
    this.dim = 0;
    if ('dim' in t) {
      this.kind = 'features';
      this.dim = positiveInt(t.dim, 'dim');
      this.height = 0;
      this.width = 0;
      this.maxTokens = 0;
      this.tokens = new Int32Array(0);
      this.lengths = new Int32Array(0);
      this.source = source;
      let options: Record<string, unknown>;
      if ('features' in t) {
        if (!(t.features instanceof Float32Array)) throw invalid('a Float32Array', 'features', t.features);
        options = { numItems: this.numItems, dim: this.dim, features: t.features };
      } else {
        if (typeof t.file !== 'string' || t.file.length === 0) throw invalid('a file path', 'file', t.file);
        if (t.dtype !== 'float32' && t.dtype !== 'float16') throw invalid("'float32' or 'float16'", 'dtype', t.dtype);
        options = { numItems: this.numItems, dim: this.dim, file: t.file, dtype: t.dtype };
      }
      try {
        this.native = new (loadAddon().ItemStore)(options);
      } catch (e) {
        throw toMorecError(e);
      }
      return;
    }
    if ('pixels' in t || 'file' in t) {
      this.kind = 'images';
      this.height = positiveInt(t.height, 'height');
      this.width = positiveInt(t.width, 'width');
      this.maxTokens = 0;
      this.tokens = new Int32Array(0);
      this.lengths = new Int32Array(0);
      this.source = source;
      const options =
        'pixels' in t
          ? { numItems: this.numItems, height: this.height, width: this.width, pixels: t.pixels }
          : { numItems: this.numItems, height: this.height, width: this.width, file: t.file };
      if ('pixels' in t && !(t.pixels instanceof Uint8Array)) throw invalid('a Uint8Array', 'pixels', t.pixels);
      if ('file' in t && (typeof t.file !== 'string' || t.file.length === 0)) throw invalid('a file path', 'file', t.file);
      try {
        this.native = new (loadAddon().ItemStore)(options);
      } catch (e) {
        throw toMorecError(e);
      }
      return;
    }
    this.kind = 'tokens';
    this.height = 0;
    this.width = 0;
    this.maxTokens = positiveInt(t.maxTokens, 'maxTokens');
    this.tokens = int32Array(t.tokens, 'tokens');
    this.lengths = int32Array(t.lengths, 'lengths');
    this.source = source;
    try {
      this.native = new (loadAddon().ItemStore)({ numItems: this.numItems, maxTokens: this.maxTokens, tokens: this.tokens, lengths: this.lengths });
    } catch (e) {
      throw toMorecError(e);
    }
  }

  /** Images held in memory (copied into native memory): pixels of (numItems + 1) x 3 x height x width bytes, CHW. */
  static fromPixels(p: ItemPixels, source: Record<string, unknown> = {}): ItemStore {
    if (typeof p !== 'object' || p === null || !('pixels' in p)) throw invalid('an object with numItems, height, width, pixels', 'pixels', p);
    return new ItemStore(p, source);
  }

  /** A prepared image store's pixel file, memory-mapped by the core (pages are read as batches need them). */
  static fromPixelFile(f: ItemPixelFile, source: Record<string, unknown> = {}): ItemStore {
    if (typeof f !== 'object' || f === null || !('file' in f)) throw invalid('an object with numItems, height, width, file', 'file', f);
    return new ItemStore(f, source);
  }

  /** Frozen-encoder features held in memory (copied into native memory): (numItems + 1) x dim float32. */
  static fromFeatures(f: ItemFeatures, source: Record<string, unknown> = {}): ItemStore {
    if (typeof f !== 'object' || f === null || !('features' in f)) throw invalid('an object with numItems, dim, features', 'features', f);
    return new ItemStore(f, source);
  }

  /** A feature cache's matrix, memory-mapped by the core (read-only; float16 is widened once on load). */
  static fromFeatureFile(f: ItemFeatureFile, source: Record<string, unknown> = {}): ItemStore {
    if (typeof f !== 'object' || f === null || !('file' in f) || !('dim' in f)) throw invalid('an object with numItems, dim, file, dtype', 'file', f);
    return new ItemStore(f, source);
  }

  /** Tokenizes texts[i - 1] as item i's title (with the tokenizer's special tokens, at most maxTokens). */
  static fromTexts(texts: (string | null)[], tokenizer: TitleEncoder, maxTokens = 30, options: { missingText?: 'error' | 'empty' } = {}): ItemStore {
    if (!Array.isArray(texts) || texts.length < 1) throw invalid('a non-empty array of item texts', 'texts', texts);
    positiveInt(maxTokens, 'maxTokens');
    const enc = tokenizer.encodeAll(texts, maxTokens, options);
    const tokens = new Int32Array((texts.length + 1) * maxTokens).fill(tokenizer.padId);
    tokens.set(enc.ids, maxTokens);
    const lengths = new Int32Array(texts.length + 1);
    lengths.set(enc.lengths, 1);
    return new ItemStore({ numItems: texts.length, maxTokens, tokens, lengths }, { tokenizer: tokenizer.fingerprint, maxTokens });
  }
}
