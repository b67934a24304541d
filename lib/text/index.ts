export { loadTokenizer, TextTokenizer, TokenizerKind, TokenizerJson, LoadTokenizerOptions, EncodeAllOptions, EncodedTexts, MissingTextPolicy } from './tokenizer';
