import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer, TextTokenizer } from '../lib/text';
import { MorecError } from '../lib';

// Expected ids come from an independent Python implementation of Google's BERT tokenizer and GPT-2's byte-level
// BPE (test/fixtures/text/make_tokenizer_reference.py), not from @huggingface/tokenizers.
interface ReferenceCase { text: string; bert: number[]; bertCased: number[]; roberta: number[]; robertaLower: number[] }
const reference: { maxTokens: number; cases: ReferenceCase[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'text', 'tokenizer_reference.json'), 'utf8'));
const vocabDir = (name: string) => path.join(__dirname, '..', '..', '..', 'shared', 'vocab', name);
const BERT = vocabDir('bert-base-uncased');
const ROBERTA = vocabDir('roberta-base');
const MAX = reference.maxTokens;

const bert = loadTokenizer(BERT);
const roberta = loadTokenizer(ROBERTA);
const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'morec-tok-'));
const morecError = (code: string, message: RegExp | string) => (e: unknown) =>
  e instanceof MorecError && e.code === code && (typeof message === 'string' ? e.message === message : message.test(e.message));

function assertReference(tok: TextTokenizer, key: Exclude<keyof ReferenceCase, 'text'>): void {
  for (const c of reference.cases) assert.deepEqual(tok.encode(c.text, MAX), c[key], `${key} ${JSON.stringify(c.text)}`);
}

test('published ids: bert-base-uncased "Hello, world!" and roberta-base "Hello world"', () => {
  assert.deepEqual(bert.encode('Hello, world!', MAX), [101, 7592, 1010, 2088, 999, 102]);
  assert.deepEqual(roberta.encode('Hello world', MAX), [0, 31414, 232, 2]);
});

test('bert-base-uncased vocab.txt: WordPiece, lower-cased by default, special ids', () => {
  assert.equal(bert.kind, 'wordpiece');
  assert.equal(bert.lowercase, true);
  assert.deepEqual([bert.vocabSize, bert.padId, bert.clsId, bert.sepId, bert.bosId, bert.eosId], [30522, 0, 101, 102, 101, 102]);
  assert.match(bert.fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(loadTokenizer(BERT).fingerprint, bert.fingerprint);
});

test('roberta-base vocab.json + merges.txt: byte-level BPE, case kept by default, special ids', () => {
  assert.equal(roberta.kind, 'bpe');
  assert.equal(roberta.lowercase, false);
  assert.deepEqual([roberta.vocabSize, roberta.padId, roberta.clsId, roberta.sepId], [50265, 1, 0, 2]);
});

test(`BERT ids equal the reference for ${reference.cases.length} strings`, () => assertReference(bert, 'bert'));
test(`RoBERTa ids equal the reference for ${reference.cases.length} strings`, () => assertReference(roberta, 'roberta'));

test('the lowercase option overrides the default (and changes the fingerprint)', () => {
  const bertCased = loadTokenizer(BERT, { lowercase: false });
  const robertaLower = loadTokenizer(ROBERTA, { lowercase: true });
  assert.equal(bertCased.lowercase, false);
  assert.equal(robertaLower.lowercase, true);
  assertReference(bertCased, 'bertCased');
  assertReference(robertaLower, 'robertaLower');
  assert.notEqual(bertCased.fingerprint, bert.fingerprint);
  assert.notEqual(robertaLower.fingerprint, roberta.fingerprint);
  assert.deepEqual(robertaLower.encode('HELLO World', MAX), roberta.encode('hello world', MAX));
});

test('a vocab.txt with upper-case pieces (a cased model) is not lower-cased by default', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'Hello', 'hello', '##s', ','].join('\n') + '\n');
  const tok = loadTokenizer(dir);
  assert.equal(tok.lowercase, false);
  assert.deepEqual(tok.encode('Hello hellos HELLO, x', 10), [2, 5, 6, 7, 1, 8, 1, 3]);
  assert.deepEqual(loadTokenizer(dir, { lowercase: true }).encode('Hello HELLO', 10), [2, 6, 6, 3]);
});

test('truncation: at most maxTokens ids, [SEP] / </s> kept last', () => {
  const long = reference.cases.find((c) => c.text.startsWith('The quick brown fox'))!.text;
  for (const [tok, last] of [[bert, 102], [roberta, 2]] as const) {
    const full = tok.encode(long, 1000);
    assert.ok(full.length > MAX);
    for (const max of [3, 5, MAX]) {
      const ids = tok.encode(long, max);
      assert.equal(ids.length, max);
      assert.equal(ids[max - 1], last);
      assert.deepEqual(ids.slice(0, max - 1), full.slice(0, max - 1));
    }
    assert.throws(() => tok.encode(long, 2), morecError('EINVAL', 'Expected an integer >= 3 for maxTokens but received 2'));
    assert.throws(() => tok.encode(long, 4.5), morecError('EINVAL', /for maxTokens but received 4.5/));
  }
});

test('encodeAll: a padded row-major matrix with the true length of each row', () => {
  const texts = ['Hello, world!', '', reference.cases.find((c) => c.text.startsWith('The quick'))!.text, '   '];
  for (const tok of [bert, roberta]) {
    const max = 8;
    const out = tok.encodeAll(texts, max);
    assert.equal(out.maxTokens, max);
    assert.ok(out.ids instanceof Int32Array && out.lengths instanceof Int32Array);
    assert.equal(out.ids.length, texts.length * max);
    texts.forEach((t, i) => {
      const row = tok.encode(t, max);
      assert.equal(out.lengths[i], row.length);
      assert.deepEqual([...out.ids.subarray(i * max, i * max + row.length)], row);
      assert.ok(out.ids.subarray(i * max + row.length, (i + 1) * max).every((id) => id === tok.padId));
    });
    assert.deepEqual([...out.lengths], tok === bert ? [6, 2, 8, 2] : [6, 2, 8, 5]);
  }
  assert.deepEqual(bert.encodeAll([], 8), { ids: new Int32Array(0), lengths: new Int32Array(0), maxTokens: 8 });
});

test("missing text: an error by default, the special tokens only with missingText: 'empty'", () => {
  assert.throws(() => bert.encodeAll(['ok', null], MAX), morecError('EINVAL', 'item 1 has no text'));
  assert.throws(() => roberta.encodeAll([undefined], MAX, { missingText: 'error' }), morecError('EINVAL', 'item 0 has no text'));
  const out = roberta.encodeAll(['Hello world', null], 6, { missingText: 'empty' });
  assert.deepEqual([...out.ids], [0, 31414, 232, 2, 1, 1, 0, 2, 1, 1, 1, 1]);
  assert.deepEqual([...out.lengths], [4, 2]);
  assert.deepEqual(bert.encode('', MAX), [101, 102]);
  assert.throws(() => bert.encodeAll(['a'], MAX, { missingText: 'skip' as 'empty' }), morecError('EINVAL', /'error' or 'empty' for missingText/));
  assert.throws(() => bert.encode(null as unknown as string, MAX), morecError('EINVAL', 'Expected a string for text but received null'));
});

test('special tokens written in a title are text, not control tokens', () => {
  assert.deepEqual(bert.encode('[SEP]', MAX), [101, 1031, 19802, 1033, 102]);
  assert.ok(!roberta.encode('</s> <s>', MAX).slice(1, -1).some((id) => id === 0 || id === 2));
});

test('a tokenizer.json folder: the JSON built from vocab.txt / vocab.json loads to the same ids', () => {
  for (const [tok, key] of [[bert, 'bert'], [roberta, 'roberta']] as const) {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.json));
    const fromJson = loadTokenizer(dir);
    assert.equal(fromJson.kind, 'tokenizer.json');
    assert.equal(fromJson.lowercase, tok.lowercase);
    assert.deepEqual([fromJson.vocabSize, fromJson.padId, fromJson.clsId, fromJson.sepId], [tok.vocabSize, tok.padId, tok.clsId, tok.sepId]);
    assert.notEqual(fromJson.fingerprint, tok.fingerprint); // the kind is part of the key
    assertReference(fromJson, key);
  }
});

test('tokenizer_config.json do_lower_case overrides the tokenizer.json normalizer; options override both', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(bert.json));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false, pad_token: '[PAD]' }));
  const cased = loadTokenizer(dir);
  assert.equal(cased.lowercase, false);
  assertReference(cased, 'bertCased');
  assertReference(loadTokenizer(dir, { lowercase: true }), 'bert');
});

test('errors: no tokenizer files, malformed JSON, not a directory', () => {
  const empty = tempDir();
  assert.throws(() => loadTokenizer(empty), morecError('EINVAL',
    `${empty}: no tokenizer found (expected tokenizer.json, vocab.txt, or vocab.json + merges.txt)`));
  fs.writeFileSync(path.join(empty, 'merges.txt'), '#version: 0.2\n'); // merges without vocab.json is still nothing
  assert.throws(() => loadTokenizer(empty), morecError('EINVAL', /no tokenizer found/));

  const bad = tempDir();
  const file = path.join(bad, 'tokenizer.json');
  fs.writeFileSync(file, '{"model": {"type": "WordPiece",');
  assert.throws(() => loadTokenizer(bad), morecError('EFORMAT', new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: malformed JSON`)));
  fs.writeFileSync(file, '{"version": "1.0"}');
  assert.throws(() => loadTokenizer(bad), morecError('EFORMAT', `${file}: not a tokenizer.json (no "model" with a "type")`));

  const badConfig = tempDir();
  fs.copyFileSync(path.join(BERT, 'vocab.txt'), path.join(badConfig, 'vocab.txt'));
  fs.writeFileSync(path.join(badConfig, 'tokenizer_config.json'), 'not json');
  assert.throws(() => loadTokenizer(badConfig), morecError('EFORMAT', /tokenizer_config\.json: malformed JSON/));

  assert.throws(() => loadTokenizer(path.join(empty, 'nope')), morecError('EINVAL', /nope: not a directory/));
});
