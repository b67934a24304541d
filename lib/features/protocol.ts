/** Messages between the feature extractor (main thread) and its ONNX Runtime workers. */

export interface ValueInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

/** An ONNX model's declared inputs and outputs. */
export interface EncoderIo {
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** workerData: the session to open. */
export interface WorkerStart {
  file: string;
  threads: number;
  provider: 'cpu' | 'cuda';
}

/** Sent once the first worker reported the model's inputs and outputs: how to feed it and what to read. */
export interface WorkerSetup extends WorkerStart {
  output: string;
  pooling: 'cls' | 'mean' | 'pooled';
  /** Element type per input name ('int64' or 'int32'), from the model's metadata. */
  inputTypes: Record<string, string>;
  text?: { ids: string; mask: string; types?: string };
  imageInput?: string;
  image?: { file: string; height: number; width: number; mean: number[]; std: number[] };
}

export type WorkerRequest =
  | { type: 'setup'; setup: WorkerSetup }
  | { type: 'text'; id: number; n: number; T: number; ids: Int32Array; lengths: Int32Array }
  | { type: 'image'; id: number; items: Int32Array };

export type WorkerReply =
  | { type: 'ready'; io: EncoderIo }
  | { type: 'done'; id: number; features: Float32Array }
  | { type: 'error'; id?: number; code: string; message: string };
