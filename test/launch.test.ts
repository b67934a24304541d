// The process launcher of `morec train --nproc N` (lib/dist/launch.ts): every child gets the torchrun
// environment (ranks, world size, master address, its share of the threads), rank k > 0's output carries a
// `[rank k] ` prefix, and the first child to fail stops the others and says why. Children are small scripts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { distEnvOf, launch, LaunchOptions } from '../lib/dist/launch';
import { MorecError } from '../lib/errors';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-launch-'));

/** Writes a child script; `out` (a folder for its files) and `rank` are defined in it. */
function script(name: string, body: string): string {
  const file = path.join(work, `${name}.js`);
  fs.writeFileSync(file, `const fs = require('fs'), path = require('path');\nconst rank = Number(process.env.RANK);\nconst out = ${JSON.stringify(work)};\n${body}\n`);
  return file;
}

/** A stream that keeps what is written to it. */
function capture(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({ write(chunk, _enc, done) { chunks.push(String(chunk)); done(); } });
  return Object.assign(w, { text: () => chunks.join('') });
}

/** launch() with its output captured, so the test runner's own streams stay clean. */
async function run(options: LaunchOptions) {
  const stdout = capture();
  const stderr = capture();
  const logs: string[] = [];
  const started = Date.now();
  const result = await launch({ stdout, stderr, log: (line) => logs.push(line), ...options });
  return { result, stdout: stdout.text(), stderr: stderr.text(), logs, seconds: (Date.now() - started) / 1000 };
}

/** Whether the process runs (a zombie, dead but not yet reaped by whoever inherited it, does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return process.platform !== 'linux';
  }
}

/** Resolves when every file exists (children write them once they are ready). */
const waitForFiles = `async function waitFor(...files) { while (!files.every((f) => fs.existsSync(f))) await new Promise((r) => setTimeout(r, 20)); }`;

const printEnv = (tag: string) => script(`env-${tag}`, `
const keys = ['RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'MOREC_THREADS', 'MOREC_LAUNCHED', 'EXTRA'];
fs.writeFileSync(path.join(out, '${tag}-' + rank + '.json'), JSON.stringify(Object.fromEntries(keys.map((k) => [k, process.env[k]]))));`);

function envsOf(tag: string, ranks: number[]) {
  return ranks.map((r) => JSON.parse(fs.readFileSync(path.join(work, `${tag}-${r}.json`), 'utf8')) as Record<string, string>);
}

test('every process gets its rank, the world size, the master address and port, and its share of the threads', async () => {
  const { result } = await run({ nproc: 3, threads: 6, args: [printEnv('three')], env: { EXTRA: 'x' } });
  assert.deepEqual(result, { code: 0 });
  const envs = envsOf('three', [0, 1, 2]);
  const port = Number(envs[0].MASTER_PORT);
  assert.ok(Number.isInteger(port) && port > 0 && port < 65536, envs[0].MASTER_PORT);
  envs.forEach((e, i) => assert.deepEqual(e, {
    RANK: String(i), LOCAL_RANK: String(i), WORLD_SIZE: '3', LOCAL_WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
    MOREC_THREADS: '2', MOREC_LAUNCHED: '1', EXTRA: 'x',
  }));
  // fewer threads than processes: one each
  assert.equal((await run({ nproc: 3, threads: 2, args: [printEnv('few')] })).result.code, 0);
  assert.deepEqual(envsOf('few', [0, 1, 2]).map((e) => e.MOREC_THREADS), ['1', '1', '1']);
});

test('the second of two machines runs ranks 2 and 3 of 4, connecting to the given master', async () => {
  const { result } = await run({ nproc: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.1.2.3', masterPort: 29500, threads: 4, args: [printEnv('node1')] });
  assert.equal(result.code, 0);
  const envs = envsOf('node1', [2, 3]);
  assert.deepEqual(envs.map((e) => [e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT, e.MOREC_THREADS]), [
    ['2', '0', '4', '2', '10.1.2.3', '29500', '2'],
    ['3', '1', '4', '2', '10.1.2.3', '29500', '2'],
  ]);
});

test('fail fast: the first process to fail stops the others, and the result names it with its last stderr line', async () => {
  const child = script('failfast', `${waitForFiles}
if (rank === 1) {
  waitFor(path.join(out, 'ff-0.pid'), path.join(out, 'ff-2.pid')).then(() => setTimeout(() => {
    console.error('loading shard 7');
    console.error('ETORCH: CUDA out of memory on rank 1');
    process.exit(3);
  }, 200));
} else {
  fs.writeFileSync(path.join(out, 'ff-' + rank + '.pid'), String(process.pid));
  setTimeout(() => {}, 60000);
}`);
  const { result, stderr, logs, seconds } = await run({ nproc: 3, args: [child] });
  assert.ok(seconds < 10, `took ${seconds} s`);
  assert.equal(result.code, 3);
  assert.equal(result.failedRank, 1);
  assert.match(result.message!, /^rank 1 \(pid \d+\) exited with code 3: ETORCH: CUDA out of memory on rank 1$/);
  assert.deepEqual(logs, [`morec: ${result.message}`]);
  assert.match(stderr, /^\[rank 1\] ETORCH: CUDA out of memory on rank 1$/m);
  for (const r of [0, 2]) {
    const pid = Number(fs.readFileSync(path.join(work, `ff-${r}.pid`), 'utf8'));
    assert.equal(alive(pid), false, `rank ${r} (pid ${pid}) still runs`);
  }
});

test("an uncaught exception is reported by its error line, not Node's version trailer", async () => {
  const child = script('throws', `if (rank === 1) { const e = new TypeError('bad shape [3, 4]'); e.code = 'EX'; throw e; }`);
  const { result } = await run({ nproc: 2, args: [child] });
  assert.equal(result.code, 1);
  assert.equal(result.failedRank, 1);
  assert.match(result.message!, /exited with code 1: TypeError: bad shape \[3, 4\]$/);
});

test('a process killed by a signal: exit code 128 + its number, and the message names the signal', async () => {
  const child = script('sigkill', `${waitForFiles}
if (rank === 2) waitFor(path.join(out, 'sk-0.pid'), path.join(out, 'sk-1.pid')).then(() => process.kill(process.pid, 'SIGKILL'));
else { fs.writeFileSync(path.join(out, 'sk-' + rank + '.pid'), String(process.pid)); setTimeout(() => {}, 60000); }`);
  const { result, seconds } = await run({ nproc: 3, args: [child] });
  assert.ok(seconds < 10, `took ${seconds} s`);
  assert.equal(result.code, 137);
  assert.equal(result.failedRank, 2);
  assert.match(result.message!, /^rank 2 \(pid \d+\) was killed by SIGKILL$/);
});

test('a process that ignores SIGTERM is killed killGraceSeconds later', async () => {
  const child = script('stubborn', `${waitForFiles}
if (rank === 0) {
  process.on('SIGTERM', () => console.error('ignoring SIGTERM'));
  fs.writeFileSync(path.join(out, 'stubborn-0.pid'), String(process.pid));
  setInterval(() => {}, 60000);
} else waitFor(path.join(out, 'stubborn-0.pid')).then(() => process.exit(5));`);
  const { result, stderr, logs, seconds } = await run({ nproc: 2, killGraceSeconds: 1, args: [child] });
  assert.ok(seconds >= 1 && seconds < 8, `took ${seconds} s`);
  assert.equal(result.code, 5);
  assert.equal(result.failedRank, 1);
  assert.match(stderr, /^ignoring SIGTERM$/m); // rank 0's stderr, unprefixed
  assert.match(logs[1], /^morec: rank 0 \(pid \d+\) is still running 1 s after SIGTERM; sending SIGKILL$/);
  assert.equal(alive(Number(fs.readFileSync(path.join(work, 'stubborn-0.pid'), 'utf8'))), false);
});

test("rank k > 0's lines carry [rank k]; rank 0's output passes through as it is", async () => {
  const child = script('talk', `
if (rank === 0) { process.stdout.write('epoch 1 [##..]\\repoch 1 [####]\\n'); console.log('HR@10 0.5'); }
else { console.log('one a'); console.log('one b'); console.error('warn ' + rank); process.stdout.write('no newline'); }`);
  const { result, stdout, stderr } = await run({ nproc: 3, args: [child] });
  assert.equal(result.code, 0);
  // lines of different ranks interleave; each rank's own lines keep their order
  const linesOf = (text: string, r: number) => text.split('\n').filter((l) => (r === 0 ? !l.startsWith('[rank ') : l.startsWith(`[rank ${r}] `)));
  assert.deepEqual(linesOf(stdout, 0), ['epoch 1 [##..]\repoch 1 [####]', 'HR@10 0.5', '']);
  assert.deepEqual(linesOf(stderr, 0), ['']);
  for (const r of [1, 2]) {
    assert.deepEqual(linesOf(stdout, r), [`[rank ${r}] one a`, `[rank ${r}] one b`, `[rank ${r}] no newline`]);
    assert.deepEqual(linesOf(stderr, r), [`[rank ${r}] warn ${r}`]);
  }
  assert.ok(!stdout.includes('[rank 0]') && !stderr.includes('[rank 0]'));
});

const launchJs = path.resolve(__dirname, '..', 'lib', 'dist', 'launch.js');

/** Runs launch() in a process of its own, which the test then signals; resolves with its result. */
function driver(tag: string, childBody: string, killGraceSeconds: number, after = '') {
  const child = script(`${tag}-child`, `${waitForFiles}
${childBody}`);
  const file = script(`${tag}-driver`, `
require(${JSON.stringify(launchJs)}).launch({ nproc: 2, args: [${JSON.stringify(child)}], killGraceSeconds: ${killGraceSeconds} }).then((r) => {
  console.log(JSON.stringify({ ...r, listeners: ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s)) }));
});
${after}`);
  const proc = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
  return { proc, done };
}

async function filesExist(...files: string[]) {
  const until = Date.now() + 10000;
  while (!files.every((f) => fs.existsSync(f))) {
    assert.ok(Date.now() < until, `waiting for ${files.join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("the launcher's own SIGINT reaches each process exactly once; the result says it was stopped", async () => {
  const ready = [0, 1].map((r) => path.join(work, `int-${r}.pid`));
  const { proc, done } = driver('int', `
process.on('SIGINT', () => { fs.appendFileSync(path.join(out, 'int-' + rank + '.got'), 'SIGINT\\n'); setTimeout(() => process.exit(130), 300); });
fs.writeFileSync(path.join(out, 'int-' + rank + '.pid'), String(process.pid));
setInterval(() => {}, 60000);`, 30);
  await filesExist(...ready);
  proc.kill('SIGINT');
  const { code, stdout, stderr } = await done;
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { code: 130, message: 'stopped by SIGINT', listeners: [0, 0, 0] });
  assert.match(stderr, /^morec: SIGINT: stopping 2 processes \(send it again to kill them at once\)$/m);
  for (const r of [0, 1]) assert.equal(fs.readFileSync(path.join(work, `int-${r}.got`), 'utf8'), 'SIGINT\n');
});

test('a second SIGINT kills the processes at once', async () => {
  const got = [0, 1].map((r) => path.join(work, `twice-${r}.got`));
  const { proc, done } = driver('twice', `
process.on('SIGINT', () => fs.writeFileSync(path.join(out, 'twice-' + rank + '.got'), String(process.pid)));
fs.writeFileSync(path.join(out, 'twice-' + rank + '.pid'), String(process.pid));
setInterval(() => {}, 60000);`, 60);
  await filesExist(...[0, 1].map((r) => path.join(work, `twice-${r}.pid`)));
  const started = Date.now();
  proc.kill('SIGINT');
  await filesExist(...got);
  proc.kill('SIGINT');
  const { code, stdout, stderr } = await done;
  assert.ok(Date.now() - started < 10000);
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), { code: 130, message: 'stopped by SIGINT', listeners: [0, 0, 0] });
  assert.match(stderr, /^morec: SIGINT again: killing 2 processes$/m);
  for (const f of got) assert.equal(alive(Number(fs.readFileSync(f, 'utf8'))), false);
});

test('a launcher that exits while its processes run takes them along', async () => {
  const pids = [0, 1].map((r) => path.join(work, `orphan-${r}.pid`));
  const { done } = driver('orphan', `
fs.writeFileSync(path.join(out, 'orphan-' + rank + '.pid'), String(process.pid));
setInterval(() => {}, 60000);`, 5, `
const wait = setInterval(() => { if (${JSON.stringify(pids)}.every((f) => fs.existsSync(f))) { clearInterval(wait); process.exit(7); } }, 20);`);
  const { code } = await done;
  assert.equal(code, 7);
  // SIGKILL was sent as the launcher exited; its delivery takes a moment
  const until = Date.now() + 5000;
  const running = () => pids.filter((f) => alive(Number(fs.readFileSync(f, 'utf8'))));
  while (running().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(running(), []);
});

function usageError(pattern: RegExp) {
  return (e: unknown) => e instanceof MorecError && e.code === 'EUSAGE' && pattern.test(e.message);
}

test('bad options are refused by flag name before anything starts', async () => {
  const args = [printEnv('never')];
  await assert.rejects(launch({ nproc: 0, args }), usageError(/^Expected a positive integer for --nproc but received 0$/));
  await assert.rejects(launch({ nproc: 2, nnodes: 0, args }), usageError(/--nnodes/));
  await assert.rejects(launch({ nproc: 2, nnodes: 2, nodeRank: 2, masterAddr: 'h', masterPort: 1234, args }),
    usageError(/^Expected an integer in 0\.\.1 for --node-rank \(--nnodes 2\) but received 2$/));
  await assert.rejects(launch({ nproc: 2, nnodes: 2, nodeRank: 0, args }), usageError(/^--master-port is required with --nnodes 2/));
  await assert.rejects(launch({ nproc: 2, nnodes: 2, nodeRank: 1, masterPort: 1234, args }), usageError(/^--master-addr is required/));
  await assert.rejects(launch({ nproc: 1, masterPort: 70000, args }), usageError(/^Expected an integer in 1\.\.65535 for --master-port but received 70000$/));
  await assert.rejects(launch({ nproc: 1, threads: 1.5, args }), usageError(/--threads/));
  assert.equal(fs.readdirSync(work).some((f) => f.startsWith('never-')), false);
});

test('distEnvOf reads the torchrun environment, naming the variable that is wrong', () => {
  assert.equal(distEnvOf({}), undefined);
  assert.deepEqual(distEnvOf({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29500' }),
    { rank: 3, worldSize: 4, localRank: 1, masterAddr: 'node0', masterPort: 29500 });
  // LOCAL_RANK defaults to RANK; a single process needs no master
  assert.deepEqual(distEnvOf({ WORLD_SIZE: '2', RANK: '1', MASTER_ADDR: 'h', MASTER_PORT: '1' }), { rank: 1, worldSize: 2, localRank: 1, masterAddr: 'h', masterPort: 1 });
  assert.deepEqual(distEnvOf({ WORLD_SIZE: '1' }), { rank: 0, worldSize: 1, localRank: 0, masterAddr: '127.0.0.1', masterPort: 0 });
  const good = { WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'h', MASTER_PORT: '29500' };
  assert.throws(() => distEnvOf({ ...good, RANK: '5' }), usageError(/^Expected RANK to be an integer in 0\.\.1 \(WORLD_SIZE=2\) but received '5'$/));
  assert.throws(() => distEnvOf({ ...good, RANK: 'one' }), usageError(/^Expected RANK to be/));
  assert.throws(() => distEnvOf({ ...good, RANK: undefined }), usageError(/^Expected RANK to be .* but it is not set$/));
  assert.throws(() => distEnvOf({ ...good, WORLD_SIZE: '0' }), usageError(/^Expected WORLD_SIZE to be a positive integer but received '0'$/));
  assert.throws(() => distEnvOf({ ...good, MASTER_ADDR: undefined }), usageError(/^Expected MASTER_ADDR/));
  assert.throws(() => distEnvOf({ ...good, MASTER_PORT: '65536' }), usageError(/^Expected MASTER_PORT to be an integer in 1\.\.65535/));
  assert.throws(() => distEnvOf({ ...good, RANK: '1', LOCAL_RANK: '2' }), usageError(/^Expected LOCAL_RANK to be an integer in 0\.\.1 \(RANK=1\) but received '2'$/));
});
