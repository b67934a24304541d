/**
 * Item-title tokenization for text item towers (BERT / RoBERTa). The algorithms (normalization, WordPiece,
 * byte-level BPE, special tokens) are @huggingface/tokenizers'; this file only finds the files, builds the
 * tokenizer.json that Hugging Face's converters would build from bare vocabularies, and packs the ids.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { MorecError, invalid } from '../errors';

export type TokenizerKind = 'wordpiece' | 'bpe' | 'tokenizer.json';
export type MissingTextPolicy = 'error' | 'empty';

export interface LoadTokenizerOptions {
  /** Lower-case titles before tokenizing. Default: the tokenizer's own config (see loadTokenizer). */
  lowercase?: boolean;
}

export interface EncodeAllOptions {
  /** A null/undefined title: 'error' (default) throws, 'empty' encodes it as the special tokens only. */
  missingText?: MissingTextPolicy;
}

/** texts.length × maxTokens ids, row-major, padded with padId; lengths[i] counts row i's real tokens. */
export interface EncodedTexts {
  ids: Int32Array;
  lengths: Int32Array;
  maxTokens: number;
}

type JsonObject = Record<string, unknown>;
interface NormalizerJson { type: string; [key: string]: unknown }
interface AddedTokenJson { id: number; content: string; special?: boolean; [key: string]: unknown }
/** The parts of a Hugging Face tokenizer.json that this module reads or writes. */
export interface TokenizerJson {
  model: { type: string; vocab: unknown; [key: string]: unknown };
  normalizer: NormalizerJson | null;
  pre_tokenizer: JsonObject | null;
  post_processor: JsonObject | null;
  decoder: JsonObject | null;
  added_tokens: AddedTokenJson[];
  [key: string]: unknown;
}

const FINGERPRINT_VERSION = 'morec-tokenizer-1'; // bump when encoding semantics change: invalidates caches
const PROBE = '\u0000morec:probe\u0000'; // stands for "the text" when asking the post-processor where specials go

export class TextTokenizer {
  readonly kind: TokenizerKind;
  /** Rows the embedding table needs: 1 + the largest id (model vocabulary and added tokens). */
  readonly vocabSize: number;
  readonly padId: number;
  /** First special id ([CLS] / <s>), -1 if the tokenizer adds none. */
  readonly clsId: number;
  /** Last special id ([SEP] / </s>), -1 if the tokenizer adds none. */
  readonly sepId: number;
  /** The unknown token's id ([UNK] / <unk>), -1 if the model has none (byte-level BPE never needs it). */
  readonly unkId: number;
  /** Whether titles are lower-cased (as configured, after options). */
  readonly lowercase: boolean;
  /** sha256 over kind, lower-casing and the whole effective tokenizer definition: a cache key for token ids. */
  readonly fingerprint: string;
  /** The effective tokenizer.json (after lower-casing overrides): written to a file, it loads to the same ids. */
  readonly json: TokenizerJson;
  private readonly tokenizer: Tokenizer;
  private readonly prefix: number[];
  private readonly suffix: number[];
  private readonly padAstralCjk: boolean;

  constructor(kind: TokenizerKind, json: TokenizerJson, config: JsonObject, lowercase: boolean, source: string) {
    this.kind = kind;
    this.json = json;
    this.lowercase = lowercase;
    // Titles are data, not markup: special tokens spelled out in a title ("<s>", "[SEP]") are tokenized as
    // text, as Google's BERT and GPT-2 tokenizers do (HF's split_special_tokens=True). So the package sees only
    // the non-special added tokens, and the special ids are resolved here from the full list.
    const specialIds = new Map(json.added_tokens.map((t) => [t.content, t.id] as const));
    try {
      const forPackage = { ...json, pre_tokenizer: withTranslatedByteLevelRegex(json.pre_tokenizer), added_tokens: json.added_tokens.filter((t) => !t.special) };
      this.tokenizer = new Tokenizer(forPackage, config);
    } catch (err) {
      throw new MorecError('EFORMAT', `${source}: ${(err as Error).message}`, { cause: err });
    }
    const idOf = (token: string): number => {
      const id = specialIds.get(token) ?? this.tokenizer.token_to_id(token);
      if (id === undefined) throw new MorecError('EFORMAT', `${source}: special token ${token} is not in the vocabulary`);
      return id;
    };
    // Where the post-processor puts its specials around a single text ([CLS] $A [SEP], <s> $A </s>, ...).
    const processed = this.tokenizer.post_processor?.post_process([PROBE], null, true).tokens ?? [PROBE];
    const at = processed.indexOf(PROBE);
    if (at < 0 || processed.lastIndexOf(PROBE) !== at) throw new MorecError('EFORMAT', `${source}: unsupported post_processor`);
    this.prefix = processed.slice(0, at).map(idOf);
    this.suffix = processed.slice(at + 1).map(idOf);
    this.clsId = this.prefix[0] ?? this.suffix[0] ?? -1;
    this.sepId = this.suffix[this.suffix.length - 1] ?? this.prefix[this.prefix.length - 1] ?? -1;

    const padToken = configToken(config, 'pad_token') ?? (json.padding as { pad_token?: string } | null | undefined)?.pad_token;
    const padCandidates = padToken !== undefined ? [padToken] : ['[PAD]', '<pad>'];
    this.padId = padCandidates.map((t) => specialIds.get(t) ?? this.tokenizer.token_to_id(t)).find((id) => id !== undefined) ?? 0;

    const unkToken = typeof json.model.unk_token === 'string' ? json.model.unk_token : undefined;
    this.unkId = unkToken === undefined ? -1 : specialIds.get(unkToken) ?? this.tokenizer.token_to_id(unkToken) ?? -1;

    let maxId = -1;
    for (const id of vocabIds(json.model.vocab)) if (id > maxId) maxId = id;
    for (const t of json.added_tokens) if (t.id > maxId) maxId = t.id;
    this.vocabSize = maxId + 1;
    this.padAstralCjk = hasBertChineseHandling(json.normalizer);
    this.fingerprint = createHash('sha256')
      .update(`${FINGERPRINT_VERSION}\n${kind}\n${lowercase}\n`)
      .update(JSON.stringify(json))
      .digest('hex');
  }

  get bosId(): number { return this.clsId; }
  get eosId(): number { return this.sepId; }

  /** Ids with special tokens, the text truncated so that the total is <= maxTokens: [CLS] t1 .. t(max-2) [SEP]. */
  encode(text: string, maxTokens: number): number[] {
    if (typeof text !== 'string') throw invalid('a string', 'text', text);
    this.checkMaxTokens(maxTokens);
    return this.encodeChecked(text, maxTokens);
  }

  /** Encodes every title into one padded matrix (see EncodedTexts). */
  encodeAll(texts: readonly (string | null | undefined)[], maxTokens: number, options: EncodeAllOptions = {}): EncodedTexts {
    if (!Array.isArray(texts)) throw invalid('an array of strings', 'texts', texts);
    this.checkMaxTokens(maxTokens);
    const missing = options.missingText ?? 'error';
    if (missing !== 'error' && missing !== 'empty') throw invalid("'error' or 'empty'", 'missingText', missing);
    const ids = new Int32Array(texts.length * maxTokens).fill(this.padId);
    const lengths = new Int32Array(texts.length);
    texts.forEach((text, i) => {
      if (text === null || text === undefined) {
        if (missing === 'error') throw new MorecError('EINVAL', `item ${i} has no text`);
        text = '';
      } else if (typeof text !== 'string') {
        throw invalid('a string or null', `texts[${i}]`, text);
      }
      const row = this.encodeChecked(text, maxTokens);
      ids.set(row, i * maxTokens);
      lengths[i] = row.length;
    });
    return { ids, lengths, maxTokens };
  }

  private encodeChecked(text: string, maxTokens: number): number[] {
    // @huggingface/tokenizers 0.2.0's BertNormalizer tests CJK code points per UTF-16 unit, so it misses the
    // astral blocks (CJK Extension B+, e.g. 𠮷); spacing them out here is exactly what the normalizer means to do.
    if (this.padAstralCjk) text = text.replace(ASTRAL_CJK, ' $& ');
    const body = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const room = maxTokens - this.prefix.length - this.suffix.length;
    return [...this.prefix, ...(body.length > room ? body.slice(0, room) : body), ...this.suffix];
  }

  private checkMaxTokens(maxTokens: number): void {
    const least = this.prefix.length + this.suffix.length + 1;
    if (!Number.isInteger(maxTokens) || maxTokens < least) throw invalid(`an integer >= ${least}`, 'maxTokens', maxTokens);
  }
}

/**
 * Loads the tokenizer in `folder`, preferring, in order:
 * - `tokenizer.json` (Hugging Face fast-tokenizer format);
 * - `vocab.txt`: BERT WordPiece, built as HF's BertConverter would;
 * - `vocab.json` + `merges.txt`: RoBERTa byte-level BPE, built as HF's RobertaConverter would.
 * `tokenizer_config.json`, when present, supplies `do_lower_case` and special-token names.
 * Lower-casing: options.lowercase, else `do_lower_case`, else for tokenizer.json its normalizer, for vocab.txt
 * true unless the vocabulary holds upper-case pieces (a cased model), for BPE false.
 */
export function loadTokenizer(folder: string, options: LoadTokenizerOptions = {}): TextTokenizer {
  if (typeof folder !== 'string') throw invalid('a folder path', 'folder', folder);
  if (options.lowercase !== undefined && typeof options.lowercase !== 'boolean') throw invalid('a boolean', 'lowercase', options.lowercase);
  if (!fs.statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new MorecError('EINVAL', `${folder}: not a directory`);
  const file = (name: string) => path.join(folder, name);
  const exists = (name: string) => fs.existsSync(file(name));
  const config = exists('tokenizer_config.json') ? readJsonObject(file('tokenizer_config.json')) : {};
  const configLower = typeof config.do_lower_case === 'boolean' ? config.do_lower_case : undefined;

  if (exists('tokenizer.json')) {
    const source = file('tokenizer.json');
    const raw = readJsonObject(source);
    const model = raw.model as TokenizerJson['model'] | undefined;
    if (typeof model !== 'object' || model === null || typeof model.type !== 'string') {
      throw new MorecError('EFORMAT', `${source}: not a tokenizer.json (no "model" with a "type")`);
    }
    // The package requires these keys to be present (null when absent).
    const json: TokenizerJson = {
      ...raw, model,
      normalizer: (raw.normalizer ?? null) as NormalizerJson | null,
      pre_tokenizer: (raw.pre_tokenizer ?? null) as JsonObject | null,
      post_processor: (raw.post_processor ?? null) as JsonObject | null,
      decoder: (raw.decoder ?? null) as JsonObject | null,
      added_tokens: Array.isArray(raw.added_tokens) ? (raw.added_tokens as AddedTokenJson[]) : [],
    };
    const lowercase = options.lowercase ?? configLower ?? lowercases(json.normalizer);
    json.normalizer = withLowercase(json.normalizer, lowercase);
    return new TextTokenizer('tokenizer.json', json, config, lowercase, source);
  }

  if (exists('vocab.txt')) {
    const source = file('vocab.txt');
    const tokens = fs.readFileSync(source, 'utf8').split('\n');
    if (tokens[tokens.length - 1] === '') tokens.pop(); // the trailing newline
    const vocab = Object.fromEntries(tokens.map((t, i) => [t.replace(/\r$/, ''), i] as const));
    const lowercase = options.lowercase ?? configLower ?? !Object.keys(vocab).some((t) => !/^\[.*\]$/.test(t) && t.toLowerCase() !== t);
    return new TextTokenizer('wordpiece', wordPieceJson(vocab, config, lowercase, source), config, lowercase, source);
  }

  if (exists('vocab.json') && exists('merges.txt')) {
    const source = file('vocab.json');
    const vocab = readJsonObject(source);
    for (const [t, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id)) throw new MorecError('EFORMAT', `${source}: the id of ${JSON.stringify(t)} is not an integer`);
    }
    const merges = readMerges(file('merges.txt'));
    const lowercase = options.lowercase ?? configLower ?? false;
    return new TextTokenizer('bpe', bpeJson(vocab as Record<string, number>, merges, config, lowercase, source), config, lowercase, source);
  }

  throw new MorecError('EINVAL', `${folder}: no tokenizer found (expected tokenizer.json, vocab.txt, or vocab.json + merges.txt)`);
}

/** BERT: what transformers' BertConverter writes for a WordPiece vocab.txt. */
function wordPieceJson(vocab: Record<string, number>, config: JsonObject, lowercase: boolean, source: string): TokenizerJson {
  const name = (key: string, fallback: string) => configToken(config, key) ?? fallback;
  const [cls, sep, unk] = [name('cls_token', '[CLS]'), name('sep_token', '[SEP]'), name('unk_token', '[UNK]')];
  for (const t of [cls, sep, unk]) if (!(t in vocab)) throw new MorecError('EFORMAT', `${source}: no ${t} in the vocabulary`);
  const special = (id: string) => ({ id, ids: [vocab[id]], tokens: [id] });
  return {
    version: '1.0',
    added_tokens: addedTokens(vocab, [name('pad_token', '[PAD]'), unk, cls, sep, name('mask_token', '[MASK]')]),
    // strip_accents null: accents are stripped exactly when lower-casing, as in Google's BERT.
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: { [cls]: special(cls), [sep]: special(sep) },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/** RoBERTa: what transformers' RobertaConverter writes for vocab.json + merges.txt. */
function bpeJson(vocab: Record<string, number>, merges: [string, string][], config: JsonObject, lowercase: boolean, source: string): TokenizerJson {
  const name = (keys: string[], fallback: string) => keys.map((k) => configToken(config, k)).find((t) => t !== undefined) ?? fallback;
  const [bos, eos] = [name(['cls_token', 'bos_token'], '<s>'), name(['sep_token', 'eos_token'], '</s>')];
  for (const t of [bos, eos]) if (!(t in vocab)) throw new MorecError('EFORMAT', `${source}: no ${t} in the vocabulary`);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    added_tokens: addedTokens(vocab, [bos, name(['pad_token'], '<pad>'), eos, name(['unk_token'], '<unk>'), name(['mask_token'], '<mask>')]),
    normalizer: lowercase ? { type: 'Lowercase' } : null,
    pre_tokenizer: byteLevel,
    post_processor: { type: 'RobertaProcessing', sep: [eos, vocab[eos]], cls: [bos, vocab[bos]], trim_offsets: true, add_prefix_space: false },
    decoder: byteLevel,
    // No unk: every byte has a token, so byte-level BPE never needs one.
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges },
  };
}

function addedTokens(vocab: Record<string, number>, names: string[]): AddedTokenJson[] {
  return [...new Set(names)].filter((t) => t in vocab).sort((a, b) => vocab[a] - vocab[b])
    .map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
}

function readMerges(file: string): [string, string][] {
  const merges: [string, string][] = [];
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    line = line.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const pair = line.split(' ');
    if (pair.length !== 2 || !pair[0] || !pair[1]) throw new MorecError('EFORMAT', `${file}:${i + 1}: expected two symbols separated by a space`);
    merges.push(pair as [string, string]);
  });
  return merges;
}

function readJsonObject(file: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MorecError('EFORMAT', `${file}: malformed JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MorecError('EFORMAT', `${file}: expected a JSON object`);
  return value as JsonObject;
}

/** tokenizer_config.json spells a token as "[CLS]" or as {"content": "[CLS]", ...}. */
function configToken(config: JsonObject, key: string): string | undefined {
  const v = config[key] as unknown;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

function* vocabIds(vocab: unknown): Iterable<number> {
  if (Array.isArray(vocab)) { // Unigram: [piece, score][]
    if (vocab.length > 0) yield vocab.length - 1;
  } else if (typeof vocab === 'object' && vocab !== null) {
    for (const id of Object.values(vocab)) if (typeof id === 'number') yield id;
  }
}

function lowercases(n: NormalizerJson | null): boolean {
  if (n === null) return false;
  if (n.type === 'Lowercase') return true;
  if (n.type === 'BertNormalizer') return n.lowercase === true;
  if (n.type === 'Sequence') return ((n.normalizers ?? []) as NormalizerJson[]).some(lowercases);
  return false;
}

/** The normalizer with lower-casing switched on or off (BertNormalizer's flag, else a Lowercase step). */
function withLowercase(n: NormalizerJson | null, lowercase: boolean): NormalizerJson | null {
  if (lowercases(n) === lowercase) return n;
  if (n === null) return { type: 'Lowercase' };
  if (n.type === 'BertNormalizer') return { ...n, lowercase };
  if (!lowercase) {
    if (n.type === 'Lowercase') return null;
    // Only a Sequence can reach here (see lowercases).
    const normalizers = ((n.normalizers ?? []) as NormalizerJson[]).map((c) => withLowercase(c, false)).filter((c): c is NormalizerJson => c !== null);
    return { ...n, normalizers };
  }
  return n.type === 'Sequence' ? { ...n, normalizers: [...((n.normalizers ?? []) as NormalizerJson[]), { type: 'Lowercase' }] } : { type: 'Sequence', normalizers: [n, { type: 'Lowercase' }] };
}

/**
 * @huggingface/tokenizers 0.2.0's ByteLevel pre-tokenizer splits with a JS RegExp literal whose \s also matches
 * U+FEFF (and misses U+0085), unlike GPT-2's regex and the Rust crate ("a \uFEFF!" splits differently). The
 * package translates the same pattern correctly (\s -> \p{White_Space}) when it comes as a Split step, so a
 * regex-splitting ByteLevel is handed over as Split(GPT-2 pattern) + ByteLevel without regex: the same
 * definition, the package's correct path. (With add_prefix_space the package would prefix every split: left alone.)
 */
function withTranslatedByteLevelRegex(p: JsonObject | null): JsonObject | null {
  if (p === null) return p;
  if (p.type === 'Sequence') return { ...p, pretokenizers: ((p.pretokenizers ?? []) as JsonObject[]).map(withTranslatedByteLevelRegex) };
  if (p.type !== 'ByteLevel' || p.use_regex === false || p.add_prefix_space === true) return p;
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: GPT2_PATTERN }, behavior: 'Isolated', invert: false },
      { ...p, use_regex: false },
    ],
  };
}
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

function hasBertChineseHandling(n: NormalizerJson | null): boolean {
  if (n === null) return false;
  if (n.type === 'BertNormalizer') return n.handle_chinese_chars === true;
  return n.type === 'Sequence' && ((n.normalizers ?? []) as NormalizerJson[]).some(hasBertChineseHandling);
}

// The astral blocks of BERT's _is_chinese_char (the BMP ones the package handles itself).
const ASTRAL_CJK = /[\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu;
