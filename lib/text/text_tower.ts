/**
 * Everything a text item tower needs from a data set: the encoder (a preset trained from scratch or a
 * Hugging Face checkpoint folder), a tokenizer (the checkpoint's, a given folder, or — for scratch encoders —
 * a word vocabulary built from the data set's own titles) and the ItemStore of tokenized titles.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dataset } from '../data/dataset';
import { MorecError } from '../errors';
import { ItemStore } from '../item_store';
import { writeAtomic } from '../io/safetensors';
import { NativeTextTowerConfig } from '../native';
import { resolveTextEncoder } from './encoder';
import { loadTokenizer, MissingTextPolicy, TextTokenizer } from './tokenizer';

export interface TextTowerOptions {
  /** Preset name in models/ (trained from scratch) or a Hugging Face checkpoint folder. Default 'bert-tiny'. */
  encoder?: string;
  /** Tokens per title including [CLS]/[SEP] (paper: 30). */
  maxTokens?: number;
  pooling?: 'cls' | 'mean';
  /** Train only the top n encoder layers (embeddings and the rest frozen); default: all. */
  finetuneTopLayers?: number;
  /** Compute the frozen bottom's output once per item (needs finetuneTopLayers). */
  cacheFrozen?: boolean;
  /** Tokenizer folder; default the checkpoint folder, or for a preset a vocabulary built from the titles. */
  tokenizer?: string;
  /** Items without a title: 'error' (default) or 'empty' (only the special tokens, counted in the summary). */
  missingText?: MissingTextPolicy;
  /** Where a generated vocabulary is written (default: the data set cache, else a temp folder). */
  workDir?: string;
}

export interface PreparedTextTower {
  text: Partial<NativeTextTowerConfig>;
  items: ItemStore;
  /** Checkpoint file to load with Model.loadEncoderWeights, for pretrained encoders. */
  weights?: string;
  pretrained: boolean;
  /** e.g. 'bert-tiny(scratch)', 'bert-base-uncased(pretrained)'. */
  label: string;
  tokenizer: TextTokenizer;
  /** One line for the load summary: vocabulary, unknown-token share, missing and truncated titles. */
  summary: string;
}

/** BERT's basic pre-tokenization, for counting words: lower-cased, accents stripped, punctuation split off. */
function words(text: string): string[] {
  const t = text.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
  return t.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
}

/** A whole-word WordPiece vocabulary from titles (most frequent first), for encoders trained from scratch. */
export function buildWordVocab(texts: readonly (string | null | undefined)[], maxWords = 30000): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) if (t) for (const w of words(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([w]) => w);
  return ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...sorted.filter((w) => !/^\[.*\]$/.test(w)).slice(0, maxWords)];
}

/**
 * The titles' tokens, cached beside the prepared data set (`tokens-<key>.i32`: lengths then ids), keyed by the
 * data set's fingerprint, the tokenizer's fingerprint, maxTokens and the missing-text policy. A cache file of
 * the wrong size is ignored and rewritten.
 */
export function tokenizedItems(data: Dataset, texts: (string | null)[], tokenizer: TextTokenizer, maxTokens: number, missingText: MissingTextPolicy) {
  const key = createHash('sha256').update(JSON.stringify([data.fingerprint, tokenizer.fingerprint, maxTokens, missingText])).digest('hex').slice(0, 16);
  const file = data.cacheDir ? path.join(data.cacheDir, `tokens-${key}.i32`) : undefined;
  const rows = texts.length + 1;
  const expectedBytes = 4 * rows * (1 + maxTokens);
  if (file && fs.existsSync(file) && fs.statSync(file).size === expectedBytes) {
    const buf = fs.readFileSync(file);
    const all = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const source = { tokenizer: tokenizer.fingerprint, maxTokens };
    return { items: new ItemStore({ numItems: texts.length, maxTokens, lengths: all.slice(0, rows), tokens: all.slice(rows) }, source), cached: true };
  }
  const items = ItemStore.fromTexts(texts, tokenizer, maxTokens, { missingText });
  if (file) {
    const bytes = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    writeAtomic(file, [bytes(items.lengths), bytes(items.tokens)]);
  }
  return { items, cached: false };
}

export function prepareTextTower(data: Dataset, options: TextTowerOptions = {}): PreparedTextTower {
  const texts = data.text;
  if (!texts || texts.every((t) => t === null || t === undefined))
    throw new MorecError('EINVAL', `data set ${data.name} has no item texts: text MoRec needs a title per item (a text/title column, or an items file)`);
  const maxTokens = options.maxTokens ?? 30;
  const spec = resolveTextEncoder(options.encoder ?? 'bert-tiny');
  const pretrained = spec.weights !== undefined;
  let tokenizer: TextTokenizer;
  let vocabNote = '';
  const config = { ...spec.config };
  if (options.tokenizer) {
    tokenizer = loadTokenizer(options.tokenizer);
  } else if (spec.tokenizerDir) {
    tokenizer = loadTokenizer(spec.tokenizerDir);
  } else {
    if (config.kind !== 'bert') throw new MorecError('EINVAL', `the ${spec.name} preset needs a tokenizer folder (vocab.json + merges.txt): pass tokenizer`);
    // A scratch encoder: its vocabulary is the data set's own words, written where the data set is cached.
    const vocab = buildWordVocab(texts);
    const key = createHash('sha256').update(vocab.join('\n')).digest('hex').slice(0, 16);
    const dir = path.join(options.workDir ?? data.cacheDir ?? path.join(os.tmpdir(), 'morec'), `word-vocab-${key}`);
    if (!fs.existsSync(path.join(dir, 'vocab.txt'))) {
      fs.mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `vocab.txt.tmp-${process.pid}`);
      fs.writeFileSync(tmp, vocab.join('\n') + '\n');
      fs.renameSync(tmp, path.join(dir, 'vocab.txt'));
    }
    tokenizer = loadTokenizer(dir, { lowercase: true });
    config.vocabSize = tokenizer.vocabSize;
    vocabNote = `word vocabulary of ${vocab.length - 5} title words built for the scratch encoder; `;
  }
  if (tokenizer.vocabSize > config.vocabSize)
    throw new MorecError('EINVAL', `the tokenizer has ${tokenizer.vocabSize} ids but the ${spec.name} encoder's vocabulary has ${config.vocabSize} rows`);
  const missing = texts.filter((t) => t === null || t === undefined).length;
  const { items, cached } = tokenizedItems(data, texts, tokenizer, maxTokens, options.missingText ?? 'error');
  // What the tokens look like: unknown-token share and titles cut at maxTokens.
  let unknown = 0, tokens = 0, truncated = 0;
  const unk = tokenizer.unkId;
  for (let i = 1; i <= items.numItems; i++) {
    const n = items.lengths[i];
    if (n === maxTokens) truncated++;
    for (let t = 0; t < n; t++) {
      tokens++;
      if (items.tokens[i * maxTokens + t] === unk) unknown++;
    }
  }
  const text: Partial<NativeTextTowerConfig> = { ...config };
  if (options.pooling) text.pooling = options.pooling;
  if (options.finetuneTopLayers !== undefined) text.finetuneTopLayers = options.finetuneTopLayers;
  if (options.cacheFrozen !== undefined) text.cacheFrozen = options.cacheFrozen;
  const label = `${pretrained ? path.basename(spec.name) : spec.name}(${pretrained ? 'pretrained' : 'scratch'})`;
  const summary =
    `text tower ${label}: ${vocabNote}${tokenizer.kind} tokenizer, ${tokenizer.vocabSize} ids; ${items.numItems} titles, ` +
    `${((100 * unknown) / Math.max(1, tokens)).toFixed(2)}% unknown tokens, ${truncated} cut at ${maxTokens} tokens` +
    (missing ? `, ${missing} items without a title encoded as empty (policy 'empty')` : '') +
    (cached ? ' (tokens from the cache)' : '');
  return { text, items, weights: spec.weights, pretrained, label, tokenizer, summary };
}
