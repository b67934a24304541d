/**
 * The data-parallel flags `morec train` and the study share, and what a command does with them: launch N
 * processes running the same command (this process then only waits), or join the process group the environment
 * describes (a process the launcher or an external launcher started), or neither (one process).
 */
import { Argv } from 'yargs';
import { MorecError } from '../errors';
import { ProcessGroup } from '../dist/group';
import { distEnvOf, launch, withoutLaunchFlags } from '../dist/launch';

export function distributedOptions<T>(y: Argv<T>) {
  return y
    .option('nproc', { type: 'number', default: 1, describe: 'data-parallel: processes on this machine, each training its share of every batch (c10d, Gloo on CPU); --threads is split between them' })
    .option('nnodes', { type: 'number', default: 1, describe: 'data-parallel: machines in the job (run the same command on each, with its own --node-rank)' })
    .option('node-rank', { type: 'number', default: 0, describe: "data-parallel: this machine's index, 0 .. nnodes-1 (0: rank 0's machine)" })
    .option('master-addr', { type: 'string', describe: "data-parallel: rank 0's machine as the others reach it (default 127.0.0.1)" })
    .option('master-port', { type: 'number', describe: "data-parallel: a free TCP port on rank 0's machine (default: any free port, one machine only)" })
    .option('dist-timeout', { type: 'number', default: 300, describe: 'data-parallel: seconds a rank waits for the others (rendezvous, each collective) before the job fails' })
    .option('dist-backend', { choices: ['gloo', 'nccl'] as const, default: 'gloo' as const, describe: 'data-parallel: c10d backend: gloo (CPU) or nccl (CUDA builds)' });
}

/** Whether this process was started by morec's launcher (its thread share then comes from MOREC_THREADS). */
export function launchedByMorec(): boolean {
  return process.env.MOREC_LAUNCHED === '1';
}

/**
 * With --nproc > 1 or --nnodes > 1 in a process morec did not launch: runs `argv` (the command line without the
 * launcher's flags, plus `extraArgs`) in N processes and resolves their exit status. Otherwise joins the group
 * the environment describes ({ group }, undefined when this process is alone).
 */
export async function launchOrJoin(args: Record<string, unknown>, argv: string[], extraArgs: string[] = []): Promise<{ exitCode: number } | { group?: ProcessGroup }> {
  for (const flag of ['nproc', 'nnodes'])
    if (!Number.isInteger(args[flag]) || (args[flag] as number) < 1) throw new MorecError('EUSAGE', `Expected a positive integer for --${flag} but received ${String(args[flag])}`);
  if (((args.nproc as number) > 1 || (args.nnodes as number) > 1) && !launchedByMorec()) {
    const result = await launch({
      nproc: args.nproc as number,
      nnodes: args.nnodes as number,
      nodeRank: args['node-rank'] as number,
      ...(args['master-addr'] ? { masterAddr: args['master-addr'] as string } : {}),
      ...(args['master-port'] ? { masterPort: args['master-port'] as number } : {}),
      ...(args.threads ? { threads: args.threads as number } : {}),
      args: [process.argv[1], ...withoutLaunchFlags(argv), ...extraArgs],
    });
    return { exitCode: result.code };
  }
  const dist = distEnvOf();
  if (!dist || dist.worldSize === 1) return {};
  return {
    group: await ProcessGroup.connect({
      masterAddr: dist.masterAddr,
      masterPort: dist.masterPort,
      worldSize: dist.worldSize,
      rank: dist.rank,
      localRank: dist.localRank,
      timeoutMs: (args['dist-timeout'] as number) * 1000,
      backend: args['dist-backend'] as 'gloo' | 'nccl',
    }),
  };
}
