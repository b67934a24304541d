/**
 * Checkpoints that are whole or refused. A checkpoint folder holds generation-named tensor files
 * (`model-<n>.safetensors`, `optimizer-<n>.safetensors`) and one manifest, `checkpoint.json`, written last
 * and atomically: it lists each file's size and sha256, the model config, and a digest of itself. A save
 * never overwrites a file the current manifest lists, so a save interrupted at any moment (kill -9, ENOSPC)
 * leaves the previous checkpoint loadable; files of interrupted saves are removed by the next save.
 * Loading verifies every listed file (size, hash), the manifest's digest, the config stored inside the
 * weights file, and that every value is finite; any disagreement is an error naming the file.
 * Saving and loading are asynchronous and never hold the event loop for long: files are written and read
 * through fs.promises (libuv's thread pool), hashes are taken in 8 MiB slices (lib/io/hash.ts) and the
 * finiteness check yields between slices too, so a server or a progress display keeps running meanwhile.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MorecError } from './errors';
import { sha256Of, SLICE_BYTES, yieldToLoop } from './io/hash';
import { encodeSafetensors, parseSafetensors, TEMP_MARK, Tensor, writeAtomicAsync } from './io/safetensors';
import { NamedTensor, NativeModelConfig } from './native';

export const CHECKPOINT_VERSION = 2;
const MANIFEST = 'checkpoint.json';

export interface CheckpointFile {
  name: string;
  bytes: number;
  sha256: string;
}

export interface CheckpointInfo {
  format: 'morec-checkpoint';
  version: typeof CHECKPOINT_VERSION;
  config: NativeModelConfig;
  numItems: number;
  /** model: the weights; optimizer: AdamW state; best: the best weights so far (resumable run states only). */
  files: { model: CheckpointFile; optimizer: CheckpointFile; best?: CheckpointFile };
  optimizerStep: number;
  trainingState: Record<string, unknown>;
  metrics: Record<string, unknown>;
  savedAt: string;
  /** sha256 of this JSON without `digest` (a hand-edited manifest is refused). */
  digest: string;
}

export interface CheckpointContent {
  params: Record<string, NamedTensor>;
  optimizer: { step: number; tensors: Record<string, NamedTensor> };
  config: NativeModelConfig;
  trainingState?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  /** 'current': these weights are also the best ones; 'keep': the best weights of the checkpoint already in the folder. */
  best?: 'current' | 'keep';
}

function digestOf(info: Omit<CheckpointInfo, 'digest'>): string {
  return crypto.createHash('sha256').update(JSON.stringify(info)).digest('hex');
}

/** The manifest in `dir`, or undefined where there is none or it is unreadable (a save then starts afresh). */
async function currentManifest(dir: string): Promise<CheckpointInfo | undefined> {
  try {
    const info = JSON.parse(await fs.promises.readFile(path.join(dir, MANIFEST), 'utf8')) as CheckpointInfo;
    return info.format === 'morec-checkpoint' && info.version === CHECKPOINT_VERSION ? info : undefined;
  } catch {
    return undefined;
  }
}

const TENSOR_FILE = /^(model|optimizer)-(\d+)\.safetensors$/;

/** Removes what the manifest does not list: temp files and tensor files of interrupted or superseded saves. */
async function removeUnlisted(dir: string, keep: Set<string>): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.promises.readdir(dir)) {
    if (keep.has(name)) continue;
    if (name.includes(TEMP_MARK) || TENSOR_FILE.test(name) || name === 'model.safetensors' || name === 'optimizer.safetensors') {
      await fs.promises.rm(path.join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** The save in progress per folder (resolved path): saves to one folder from this process run one at a time. */
const saving = new Map<string, Promise<unknown>>();

/**
 * Writes a checkpoint into `dir` (see the file comment for the guarantees). The typed arrays of `content` are
 * written as they are, not copied: leave them unchanged until the promise settles. A save started while
 * another one to the same folder is running waits for it (each reads the folder's state first).
 */
export function writeCheckpoint(dir: string, content: CheckpointContent): Promise<CheckpointInfo> {
  const key = path.resolve(dir);
  const done = (saving.get(key) ?? Promise.resolve()).catch(() => {}).then(() => writeNow(dir, content));
  saving.set(key, done);
  const forget = () => {
    if (saving.get(key) === done) saving.delete(key);
  };
  done.then(forget, forget);
  return done;
}

async function writeNow(dir: string, content: CheckpointContent): Promise<CheckpointInfo> {
  try {
    await fs.promises.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new MorecError('EIO', `${dir}: cannot create the checkpoint folder (${(e as NodeJS.ErrnoException).code})`, { cause: e });
  }
  const previous = await currentManifest(dir);
  const listed = new Set(previous ? Object.values(previous.files).map((f) => f.name) : []);
  await removeUnlisted(dir, listed);
  let generation = 0;
  for (const name of await fs.promises.readdir(dir)) {
    const m = TENSOR_FILE.exec(name);
    if (m) generation = Math.max(generation, Number(m[2]));
  }
  generation++;
  const write = async (kind: string, tensors: Record<string, NamedTensor>, metadata: Record<string, string>): Promise<CheckpointFile> => {
    const name = `${kind}-${generation}.safetensors`;
    return { name, ...(await writeAtomicAsync(path.join(dir, name), encodeSafetensors(tensors, metadata))) };
  };
  const model = await write('model', content.params, { format: 'pt', config: JSON.stringify(content.config) });
  const optimizer = await write('optimizer', content.optimizer.tensors, { step: String(content.optimizer.step) });
  let best: CheckpointFile | undefined;
  if (content.best === 'current') best = model;
  else if (content.best === 'keep') {
    best = previous?.files.best;
    if (!best) throw new MorecError('EINVAL', `${dir}: best 'keep' needs a checkpoint with best weights already in the folder`);
  }
  const body: Omit<CheckpointInfo, 'digest'> = {
    format: 'morec-checkpoint',
    version: CHECKPOINT_VERSION,
    config: content.config,
    numItems: content.config.numItems,
    files: { model, optimizer, ...(best ? { best } : {}) },
    optimizerStep: content.optimizer.step,
    trainingState: content.trainingState ?? {},
    metrics: content.metrics ?? {},
    savedAt: new Date().toISOString(),
  };
  const info: CheckpointInfo = { ...body, digest: digestOf(body) };
  await writeAtomicAsync(path.join(dir, MANIFEST), [Buffer.from(JSON.stringify(info, null, 2) + '\n')]);
  await removeUnlisted(dir, new Set(Object.values(info.files).map((f) => f.name)));
  return info;
}

/** Reads and checks the manifest of `dir` (a small JSON file, read synchronously). */
export function readManifest(dir: string): CheckpointInfo {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MorecError('EINVAL', `${file}: no checkpoint here (checkpoint.json is missing)`);
    throw new MorecError('EIO', `${file}: cannot read (${code})`, { cause: e });
  }
  let info: CheckpointInfo;
  try {
    info = JSON.parse(text);
  } catch (e) {
    throw new MorecError('EFORMAT', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof info !== 'object' || info === null || info.format !== 'morec-checkpoint') throw new MorecError('EFORMAT', `${file}: not a morec checkpoint`);
  if (info.version !== CHECKPOINT_VERSION)
    throw new MorecError('EFORMAT', `${file}: checkpoint version ${info.version} is not supported (this morec reads version ${CHECKPOINT_VERSION}, which lists each file's hash)`);
  const { digest, ...body } = info;
  if (digest !== digestOf(body))
    throw new MorecError('EFORMAT', `${file}: the manifest was changed after it was written (its digest does not match); refusing to load`);
  return info;
}

/** Non-finite values (NaN, ±Inf) in `data`, counted in slices with a turn of the event loop between them. */
async function countNonFinite(data: Float32Array): Promise<number> {
  const step = SLICE_BYTES / 4;
  let bad = 0;
  for (let at = 0; at < data.length; at += step) {
    if (at > 0) await yieldToLoop();
    const end = Math.min(data.length, at + step);
    for (let i = at; i < end; i++) if (!Number.isFinite(data[i])) bad++;
  }
  return bad;
}

/** Reads one listed file, checking its size and sha256 against the manifest and its values for finiteness. */
async function readListed(dir: string, entry: CheckpointFile, role: string): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  const file = path.join(dir, entry.name);
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MorecError(code === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: the ${role} file listed in checkpoint.json ${code === 'ENOENT' ? 'is missing' : `cannot be read (${code})`}; the checkpoint is not whole`);
  }
  if (buf.length !== entry.bytes)
    throw new MorecError('EFORMAT', `${file}: ${buf.length} bytes but checkpoint.json lists ${entry.bytes}; the checkpoint is not whole (an interrupted save?), refusing to load it`);
  const sha = await sha256Of(buf);
  if (sha !== entry.sha256)
    throw new MorecError('EFORMAT', `${file}: its sha256 ${sha.slice(0, 12)}… differs from the ${entry.sha256.slice(0, 12)}… checkpoint.json lists; the ${role} file was changed or belongs to another save, refusing to load`);
  const parsed = parseSafetensors(buf, file, { views: true }); // handed to the core at once, which copies them
  for (const [name, t] of Object.entries(parsed.tensors)) {
    if (!(t.data instanceof Float32Array)) continue;
    const bad = await countNonFinite(t.data);
    if (bad) throw new MorecError('ENONFINITE', `${file}: tensor '${name}' holds ${bad} non-finite value${bad > 1 ? 's' : ''} (NaN or Inf); refusing to load`);
  }
  return parsed;
}

const asFloat = (tensors: Record<string, Tensor>) => Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data as Float32Array]));

export interface LoadedCheckpoint {
  info: CheckpointInfo;
  params: Record<string, Float32Array>;
  /** Absent when read for inference. */
  optimizer?: { step: number; tensors: Record<string, Float32Array> };
  /** The best weights so far, where the checkpoint lists them and they differ from params. */
  best?: Record<string, Float32Array>;
}

/** The first config field on which two configs differ, as "heads 2 vs 4", or undefined. */
function configDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | undefined {
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = JSON.stringify(a[key]);
    const y = JSON.stringify(b[key]);
    if (x !== y) return `${key} ${x} vs ${y}`;
  }
  return undefined;
}

/**
 * Reads a whole checkpoint or refuses it. options.inference: the optimizer file is not needed (nor read);
 * otherwise a missing optimizer file is an error.
 */
export async function readCheckpoint(dir: string, options: { inference?: boolean; best?: boolean } = {}): Promise<LoadedCheckpoint> {
  const info = readManifest(dir);
  const model = await readListed(dir, info.files.model, 'weights');
  let stored: Record<string, unknown>;
  try {
    stored = JSON.parse(model.metadata.config ?? 'null');
  } catch {
    stored = {};
  }
  const diff = configDifference(info.config as unknown as Record<string, unknown>, stored ?? {});
  if (diff)
    throw new MorecError('EMISMATCH', `${path.join(dir, MANIFEST)}: its config differs from the one saved with the weights in ${info.files.model.name} (${diff}); refusing to load`);
  const out: LoadedCheckpoint = { info, params: asFloat(model.tensors) };
  if (!options.inference) {
    const opt = await readListed(dir, info.files.optimizer, 'optimizer');
    out.optimizer = { step: Number(opt.metadata.step ?? info.optimizerStep), tensors: asFloat(opt.tensors) };
  }
  if (options.best && info.files.best && info.files.best.name !== info.files.model.name) out.best = asFloat((await readListed(dir, info.files.best, 'best weights')).tensors);
  return out;
}
