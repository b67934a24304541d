/**
 * Data-parallel training's process group: c10d (libtorch's distributed layer) with a TCPStore rendezvous at
 * MASTER_ADDR:MASTER_PORT -- the env protocol of torchrun -- and Gloo on CPU (NCCL on CUDA builds). A Model
 * joined to a group (Model.joinGroup) trains each global batch's rows split across the ranks, with gradients
 * summed across ranks before every optimizer step, and evaluates each rank's share of the users.
 */
import { awaitNative, invalid, MorecError } from '../errors';
import { loadAddon, NativeProcessGroup, NativeProcessGroupOptions } from '../native';
import { distEnvOf } from './launch';

export interface ProcessGroupOptions extends NativeProcessGroupOptions {
  /** This process's index on its machine (default: rank): a CUDA model of rank r runs on cuda:<localRank>. */
  localRank?: number;
}

export class ProcessGroup {
  /** @internal */
  readonly native: NativeProcessGroup;
  /** The master, as the ranks reach it (for messages). */
  readonly master: string;
  /** This process's index on its machine (LOCAL_RANK): the CUDA device its model uses. */
  readonly localRank: number;

  private constructor(native: NativeProcessGroup, master: string, localRank: number) {
    this.native = native;
    this.master = master;
    this.localRank = localRank;
  }

  /** Joins the group: resolves once every rank has joined and agreed on WORLD_SIZE (EDIST otherwise). */
  static async connect(options: ProcessGroupOptions): Promise<ProcessGroup> {
    if (typeof options !== 'object' || options === null) throw invalid('an options object', 'options', options);
    const { localRank, ...native } = options;
    const group = await awaitNative(() => loadAddon().connectProcessGroup(native));
    return new ProcessGroup(group, `${options.masterAddr}:${options.masterPort}`, localRank ?? options.rank);
  }

  /**
   * The group the environment describes (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK: morec train --nproc, or an
   * external launcher such as torchrun or Slurm), or undefined when WORLD_SIZE is unset.
   */
  static async fromEnv(env: NodeJS.ProcessEnv = process.env, options: { timeoutMs?: number; backend?: 'gloo' | 'nccl' } = {}): Promise<ProcessGroup | undefined> {
    const dist = distEnvOf(env);
    if (!dist) return undefined;
    return ProcessGroup.connect({ masterAddr: dist.masterAddr, masterPort: dist.masterPort, worldSize: dist.worldSize, rank: dist.rank, localRank: dist.localRank, ...options });
  }

  private scopes = 0;

  /**
   * A fresh key prefix for one collective piece of work (a run, a study): every rank calls it in the same order
   * and gets the same prefix, so keys of a study's second run never meet its first's.
   */
  scope(name: string): string {
    return `${name}/${++this.scopes}`;
  }

  get rank(): number {
    return this.native.rank;
  }

  get worldSize(): number {
    return this.native.worldSize;
  }

  get backend(): string {
    return this.native.backend;
  }

  /**
   * Rank 0's value, on every rank: rank 0 passes it (JSON-serializable) and gets it back; the others wait for it
   * (up to timeoutMs; 0: the group's timeout). Keys are used once per job.
   */
  async share<T>(key: string, value?: T, timeoutMs = 0): Promise<T> {
    if (this.rank === 0) {
      if (value === undefined) throw new MorecError('EINVAL', `share('${key}'): rank 0 must give the value`);
      this.native.storeSet(key, JSON.stringify(value));
      return value;
    }
    return JSON.parse(await awaitNative(() => this.native.storeGet(key, timeoutMs))) as T;
  }

  /** Element-wise sum (or max) of every rank's values. */
  async allreduce(values: Float64Array, op: 'sum' | 'max' = 'sum'): Promise<Float64Array> {
    return awaitNative(() => this.native.allreduce(values, op));
  }

  async barrier(): Promise<void> {
    return awaitNative(() => this.native.barrier());
  }

  /** Tells the other ranks why this one stops: their EDIST errors quote it ("because rank 1: ..."). */
  recordFailure(message: string): void {
    try {
      this.native.recordFailure(message);
    } catch {
      // the store may be gone with the rank that served it
    }
  }

  close(): void {
    this.native.close();
  }
}
