/**
 * Per-item inputs of modality towers, handed to the native core once (like Sequences) and read there by the
 * encoder for every batch: each item's title as token ids, right-padded to maxTokens, row 0 = padding item.
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

export class ItemStore {
  readonly numItems: number;
  readonly maxTokens: number;
  readonly tokens: Int32Array;
  readonly lengths: Int32Array;
  /** What made the tokens (tokenizer fingerprint, maxTokens), for caches and checkpoints. */
  readonly source: Record<string, unknown>;
  /** @internal */
  readonly native: NativeItemStore;

  constructor(t: ItemTokens, source: Record<string, unknown> = {}) {
    if (typeof t !== 'object' || t === null) throw invalid('an object with numItems, maxTokens, tokens, lengths', 'items', t);
    this.numItems = positiveInt(t.numItems, 'numItems');
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
