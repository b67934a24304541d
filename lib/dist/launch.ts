/**
 * `morec train --nproc N`: starts N training processes on this machine for data-parallel training, with the
 * environment protocol of torchrun (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), so a process
 * started by an external launcher (torchrun-like, Slurm) reads the same variables through `distEnvOf`.
 *
 * Each child gets its own session (as torchrun does): a Ctrl-C in the terminal reaches the launcher alone,
 * which forwards it exactly once, and stopping a child stops its whole process group. Fail fast: the first
 * child to fail stops the others, and the launcher says which rank failed and why.
 */
import { ChildProcess, spawn, StdioOptions } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { describe, invalid, MorecError } from '../errors';

export interface LaunchOptions {
  /** Processes on this machine. */
  nproc: number;
  /** Machines in the job (default 1). */
  nnodes?: number;
  /** This machine's index, 0..nnodes-1 (default 0). */
  nodeRank?: number;
  /** Rank 0's machine (default 127.0.0.1; required when nnodes > 1 and nodeRank > 0). */
  masterAddr?: string;
  /** Rank 0's TCP port (default: a free port found on this machine when nnodes == 1; required when nnodes > 1). */
  masterPort?: number;
  /** Intra-op threads for the whole machine, split evenly between the processes (default: os.availableParallelism()); each gets max(1, floor(threads / nproc)) through MOREC_THREADS. */
  threads?: number;
  /** What each process runs: node's arguments after the executable, e.g. [scriptPath, 'train', '--name', 'x']. */
  args: string[];
  /** Extra environment for the children. */
  env?: NodeJS.ProcessEnv;
  /** Seconds between SIGTERM and SIGKILL when stopping the others (default 5). */
  killGraceSeconds?: number;
  /** Where launcher messages go (default: process.stderr lines). */
  log?: (line: string) => void;
  /** Where the children's stdout goes (default process.stdout; rank 0 then writes to it directly). */
  stdout?: NodeJS.WritableStream;
  /** Where the children's stderr goes (default process.stderr; on a terminal rank 0 writes to it directly, so its progress bar stays live). */
  stderr?: NodeJS.WritableStream;
}

export interface LaunchResult {
  /** 0 when every process exited 0; else the failed rank's exit code (128 + signal number for a signal), or 128 + the launcher's own signal. */
  code: number;
  /** The global rank that failed first. */
  failedRank?: number;
  /** What went wrong, in one line: "rank 1 (pid 1234) exited with code 3: <its last stderr line>". */
  message?: string;
}

/** The distributed setup of this process, as a launcher (morec's, torchrun-like, Slurm) put it in the environment. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  /** 0 when WORLD_SIZE is 1 and MASTER_PORT is unset: there is nothing to connect to. */
  masterPort: number;
}

/** Lines of each child's stderr kept for the failure message. */
const TAIL_LINES = 30;
/** After a child's exit, how long its pipes may stay open (held by a grandchild) before they are closed. */
const PIPE_DRAIN_MS = 2000;
/** The launcher's own signals: forwarded once (SIGHUP as SIGTERM: the terminal is gone, let them stop cleanly). */
const FORWARDED: Record<string, NodeJS.Signals> = { SIGINT: 'SIGINT', SIGTERM: 'SIGTERM', SIGHUP: 'SIGTERM' };

function usage(expected: string, flag: string, value: unknown, context = ''): MorecError {
  return new MorecError('EUSAGE', `Expected ${expected} for ${flag}${context} but received ${describe(value)}`);
}

function isInt(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

interface Plan {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number | undefined;
  threadsEach: number;
  killGraceMs: number;
}

/** Checks the options, naming the command-line flag of each; the port is left open when one is to be found. */
function planOf(o: LaunchOptions): Plan {
  if (process.env.MOREC_LAUNCHED === '1')
    throw new MorecError('EUSAGE', '--nproc cannot be used inside a process morec launched (MOREC_LAUNCHED=1): the launcher starts every process itself');
  if (!isInt(o.nproc, 1)) throw usage('a positive integer', '--nproc', o.nproc);
  const nnodes = o.nnodes ?? 1;
  if (!isInt(nnodes, 1)) throw usage('a positive integer', '--nnodes', o.nnodes);
  const nodeRank = o.nodeRank ?? 0;
  if (!isInt(nodeRank, 0, nnodes - 1)) throw usage(`an integer in 0..${nnodes - 1}`, '--node-rank', o.nodeRank, ` (--nnodes ${nnodes})`);
  if (o.masterAddr !== undefined && (typeof o.masterAddr !== 'string' || o.masterAddr.trim() === ''))
    throw usage("rank 0's host name or IP address", '--master-addr', o.masterAddr);
  if (o.masterAddr === undefined && nnodes > 1 && nodeRank > 0)
    throw new MorecError('EUSAGE', `--master-addr is required with --nnodes ${nnodes} on the machine with --node-rank ${nodeRank}: the address of the machine with --node-rank 0`);
  if (o.masterPort !== undefined && !isInt(o.masterPort, 1, 65535)) throw usage('an integer in 1..65535', '--master-port', o.masterPort);
  if (o.masterPort === undefined && nnodes > 1)
    throw new MorecError('EUSAGE', `--master-port is required with --nnodes ${nnodes}: the same free TCP port on every machine (e.g. 29500)`);
  const threads = o.threads ?? os.availableParallelism();
  if (!isInt(threads, 1)) throw usage('a positive integer', '--threads', o.threads);
  const grace = o.killGraceSeconds ?? 5;
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) throw invalid('a non-negative number of seconds', 'killGraceSeconds', o.killGraceSeconds);
  if (!Array.isArray(o.args) || o.args.length === 0 || o.args.some((a) => typeof a !== 'string'))
    throw invalid('a non-empty array of strings', 'args', o.args);
  return {
    nproc: o.nproc, nnodes, nodeRank, masterAddr: o.masterAddr ?? '127.0.0.1', masterPort: o.masterPort,
    threadsEach: Math.max(1, Math.floor(threads / o.nproc)), killGraceMs: grace * 1000,
  };
}

/** A TCP port nobody listens on now (the OS picks one for port 0); rank 0 binds it moments later. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Calls onLine with every whole line of a text stream, and with the unterminated rest at its end. */
function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  stream.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  stream.on('end', () => {
    if (pending) onLine(pending);
    pending = '';
  });
}

/**
 * The line of a stderr tail that says what went wrong: the last non-empty one, but for Node's report of an
 * uncaught exception (stack frames, error properties, then "Node.js v20...") the error's own line.
 */
function lastErrorLine(tail: string[]): string | undefined {
  const lines = tail.map((l) => l.trimEnd()).filter((l) => l !== '');
  if (lines.length === 0) return undefined;
  if (!/^Node\.js v\d/.test(lines[lines.length - 1])) return lines[lines.length - 1];
  for (let i = lines.length - 2; i >= 0; i--)
    if (!/^\s/.test(lines[i]) && !/^[{}]$/.test(lines[i]) && !lines[i].startsWith('(Use `node')) return lines[i];
  return lines[lines.length - 1];
}

interface Child {
  rank: number;
  pid: number | undefined;
  /** Set at 'exit': its pid may be reused from then on, so it is never signalled again. */
  exited: boolean;
  killed: boolean;
  settled: boolean;
  stderrTail: string[];
}

/**
 * Starts `nproc` processes running `node ...args` with the distributed environment, passes their output
 * through (`[rank k] ` before the lines of every rank but 0), and resolves when all have exited. The first
 * to fail stops the others (SIGTERM, then SIGKILL after killGraceSeconds) and decides the result.
 */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const plan = planOf(options);
  const masterPort = plan.masterPort ?? (await freePort());
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const log = options.log ?? ((line: string) => void err.write(`${line}\n`));
  // Rank 0 writes to our own terminal directly where it can: its progress bar needs stderr to be a TTY.
  const rank0Stdout = options.stdout === undefined ? 'inherit' : 'pipe';
  const rank0Stderr = options.stderr === undefined && process.stderr.isTTY ? 'inherit' : 'pipe';
  const posix = process.platform !== 'win32';
  const worldSize = plan.nproc * plan.nnodes;

  return new Promise<LaunchResult>((resolve) => {
    const children: Child[] = [];
    let failure: { rank: number; code: number; message: string } | undefined;
    let interrupted: NodeJS.Signals | undefined;
    let stopSignal: NodeJS.Signals | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let remaining = plan.nproc;

    const signal = (c: Child, sig: NodeJS.Signals) => {
      if (c.exited || c.pid === undefined) return;
      try {
        process.kill(posix ? -c.pid : c.pid, sig); // its whole process group: workers it started stop too
      } catch {
        try { process.kill(c.pid, sig); } catch { /* already gone */ }
      }
    };
    /** SIGKILL for every child still running; `why` is said of each (none: the user asked for it). */
    const killRest = (why?: string) => {
      for (const c of children) {
        if (c.exited || c.killed) continue;
        c.killed = true;
        if (why) log(`morec: rank ${c.rank} (pid ${c.pid}) ${why}; sending SIGKILL`);
        signal(c, 'SIGKILL');
      }
    };
    /** Asks every running child to stop; asked again (a second Ctrl-C), kills them now. */
    const stopAll = (sig: NodeJS.Signals) => {
      if (stopSignal) return killRest();
      stopSignal = sig;
      for (const c of children) signal(c, sig);
      killTimer = setTimeout(() => killRest(`is still running ${plan.killGraceMs / 1000} s after ${sig}`), plan.killGraceMs);
    };

    const onSignal = (sig: NodeJS.Signals) => {
      const running = children.filter((c) => !c.exited).length;
      const processes = `${running} process${running === 1 ? '' : 'es'}`;
      if (!interrupted && !stopSignal) {
        interrupted = sig;
        log(`morec: ${sig}: stopping ${processes} (send it again to kill them at once)`);
      } else if (running > 0) log(`morec: ${sig} again: killing ${processes}`);
      stopAll(FORWARDED[sig]);
    };
    // Our own crash or process.exit() must not leave the children running in their own sessions.
    const onExit = () => { for (const c of children) signal(c, 'SIGKILL'); };
    const ownSignals = Object.keys(FORWARDED) as NodeJS.Signals[];
    for (const sig of ownSignals) process.on(sig, onSignal);
    process.on('exit', onExit);

    const finish = () => {
      clearTimeout(killTimer);
      for (const sig of ownSignals) process.off(sig, onSignal);
      process.off('exit', onExit);
      if (failure) resolve({ code: failure.code, failedRank: failure.rank, message: failure.message });
      else if (interrupted) resolve({ code: 128 + os.constants.signals[interrupted], message: `stopped by ${interrupted}` });
      else resolve({ code: 0 });
    };

    /** A child is done once it has exited and its output has drained; the first that failed stops the rest. */
    const settle = (c: Child, code: number | null, sig: NodeJS.Signals | null, spawnError?: Error) => {
      if (c.settled) return;
      c.settled = true;
      c.exited = true;
      remaining--;
      const failed = spawnError !== undefined || sig !== null || code !== 0;
      if (failed && !failure && !interrupted && !stopSignal) {
        const who = `rank ${c.rank} (pid ${c.pid ?? '?'})`;
        const line = lastErrorLine(c.stderrTail);
        let message: string;
        let exitCode: number;
        if (spawnError) {
          message = `rank ${c.rank} could not be started: ${spawnError.message}`;
          exitCode = 1;
        } else if (sig !== null) {
          message = `${who} was killed by ${sig}`;
          exitCode = 128 + (os.constants.signals[sig] ?? 0);
        } else {
          message = `${who} exited with code ${code}${line ? `: ${line}` : ''}`;
          exitCode = code ?? 1;
        }
        failure = { rank: c.rank, code: exitCode, message };
        log(`morec: ${message}`);
        stopAll('SIGTERM');
      }
      if (remaining === 0) finish();
    };

    for (let i = 0; i < plan.nproc; i++) {
      const rank = plan.nodeRank * plan.nproc + i;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...options.env,
        MASTER_ADDR: plan.masterAddr,
        MASTER_PORT: String(masterPort),
        WORLD_SIZE: String(worldSize),
        RANK: String(rank),
        LOCAL_RANK: String(i),
        LOCAL_WORLD_SIZE: String(plan.nproc),
        MOREC_THREADS: String(plan.threadsEach),
        MOREC_LAUNCHED: '1',
      };
      const stdio: StdioOptions = rank === 0 ? ['ignore', rank0Stdout, rank0Stderr] : ['ignore', 'pipe', 'pipe'];
      let proc: ChildProcess;
      try {
        proc = spawn(process.execPath, [...process.execArgv, ...options.args], { env, stdio, detached: posix });
      } catch (e) {
        // Nothing more starts; the ones already running are stopped.
        remaining -= plan.nproc - i - 1;
        settle({ rank, pid: undefined, exited: true, killed: false, settled: false, stderrTail: [] }, null, null, e as Error);
        break;
      }
      const c: Child = { rank, pid: proc.pid, exited: false, killed: false, settled: false, stderrTail: [] };
      children.push(c);

      const prefix = rank === 0 ? '' : `[rank ${rank}] `;
      if (proc.stdout) {
        proc.stdout.setEncoding('utf8');
        if (rank === 0) proc.stdout.on('data', (chunk: string) => out.write(chunk));
        else eachLine(proc.stdout, (line) => out.write(`${prefix}${line}\n`));
      }
      if (proc.stderr) {
        proc.stderr.setEncoding('utf8');
        if (rank === 0) proc.stderr.on('data', (chunk: string) => err.write(chunk));
        eachLine(proc.stderr, (line) => {
          if (rank !== 0) err.write(`${prefix}${line}\n`);
          // What a terminal would show of a line redrawn with \r.
          c.stderrTail.push(line.slice(line.replace(/\r$/, '').lastIndexOf('\r') + 1).replace(/\r$/, ''));
          if (c.stderrTail.length > TAIL_LINES) c.stderrTail.shift();
        });
      }
      proc.on('error', (e) => {
        if (c.pid === undefined) settle(c, null, null, e); // could not start; later errors are failed kills
      });
      proc.on('exit', (code, sig) => {
        c.exited = true;
        // A grandchild holding the pipes must not keep us waiting.
        setTimeout(() => {
          proc.stdout?.destroy();
          proc.stderr?.destroy();
          settle(c, code, sig);
        }, PIPE_DRAIN_MS).unref();
      });
      proc.on('close', (code, sig) => settle(c, code, sig));
    }
  });
}

/** "Expected RANK to be an integer in 0..1 (WORLD_SIZE=2) but received '5'" */
function badVariable(name: string, expected: string, value: string | undefined): MorecError {
  return new MorecError('EUSAGE', `Expected ${name} to be ${expected} but ${value === undefined ? 'it is not set' : `received ${describe(value)}`}`);
}

function intVariable(env: NodeJS.ProcessEnv, name: string, min: number, max: number, expected: string, fallback?: number): number {
  const value = env[name];
  if ((value === undefined || value === '') && fallback !== undefined) return fallback;
  const n = value !== undefined && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!isInt(n, min, max)) throw badVariable(name, expected, value === '' ? undefined : value);
  return n;
}

/**
 * This process's place in a distributed job, from the environment a launcher set (`morec train --nproc`,
 * torchrun-like launchers, or a Slurm script exporting the same variables); undefined when WORLD_SIZE is unset.
 */
export function distEnvOf(env: NodeJS.ProcessEnv = process.env): DistEnv | undefined {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return undefined;
  const worldSize = intVariable(env, 'WORLD_SIZE', 1, Number.MAX_SAFE_INTEGER, 'a positive integer');
  const single = worldSize === 1;
  const rank = intVariable(env, 'RANK', 0, worldSize - 1, `an integer in 0..${worldSize - 1} (WORLD_SIZE=${worldSize})`, single ? 0 : undefined);
  const localRank = intVariable(env, 'LOCAL_RANK', 0, rank, `an integer in 0..${rank} (RANK=${rank})`, rank);
  const addr = env.MASTER_ADDR?.trim();
  if (!addr && !single) throw badVariable('MASTER_ADDR', `rank 0's host name or IP address (WORLD_SIZE=${worldSize})`, env.MASTER_ADDR);
  const masterPort = intVariable(env, 'MASTER_PORT', 1, 65535, `an integer in 1..65535 (WORLD_SIZE=${worldSize})`, single ? 0 : undefined);
  return { rank, worldSize, localRank, masterAddr: addr || '127.0.0.1', masterPort };
}

/** Flags the launcher consumes; its processes get the rest (and their thread share through MOREC_THREADS). */
const LAUNCH_FLAGS = ['nproc', 'nnodes', 'node-rank', 'master-addr', 'master-port', 'threads'];

/** A command line without the launcher's flags (`--nproc 2`, `--nproc=2`, ...): what each launched process runs. */
export function withoutLaunchFlags(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(=.*)?$/.exec(argv[i]);
    if (m && LAUNCH_FLAGS.includes(m[1])) {
      if (m[2] === undefined && i + 1 < argv.length && !argv[i + 1].startsWith('--')) i++;
      continue;
    }
    out.push(argv[i]);
  }
  return out;
}
