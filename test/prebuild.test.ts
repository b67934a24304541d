/**
 * Prebuilt binaries end to end: scripts/prebuild.js packages this checkout's addon into a staged copy of the
 * package (so the repository's own prebuilds/ is neither needed nor touched), `npm pack` ships it, and the tarball
 * installs into a fresh project with no compiler on PATH: the install script uses the prebuilt, and the project
 * loads morec and trains an epoch. Then prebuilts that cannot load (absent flavour, corrupt file, libtorch missing):
 * the install script says why and falls back to compiling, which needs a compiler, and the loader names the
 * libtorch runtime package to install.
 */
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '..', '..');
const built = path.join(repo, 'build', 'Release', 'morec.node');
const platformDir = `${process.platform}-${process.arch}`;
const prebuiltRel = `prebuilds/${platformDir}-cpu/morec.node`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'morec-prebuild-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const skip = !fs.existsSync(built) ? `no ${built} to package (build the addon first)` : process.platform !== 'linux' ? 'Linux only' : false;

/** An executable on PATH, resolved through symlinks (npm -> .../npm/bin/npm-cli.js). */
function which(name: string): string | undefined {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.realpathSync(p);
    } catch {
      // not here
    }
  }
  return undefined;
}

const npmCli = process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath) ? process.env.npm_execpath : which('npm');

/**
 * A PATH with node, npm, npx and sh only: no cc, c++, gcc, g++, make or cmake, as on a machine without a toolchain.
 * (npm runs lifecycle scripts with `sh -c`; node_modules/.bin and npm's node-gyp-bin are added by npm itself.)
 */
const bin = path.join(work, 'bin');
function makeBin() {
  fs.mkdirSync(bin, { recursive: true });
  const links: Record<string, string | undefined> = {
    node: process.execPath,
    npm: npmCli,
    npx: npmCli && path.join(path.dirname(npmCli), 'npx-cli.js'),
    sh: which('sh'),
  };
  for (const [name, target] of Object.entries(links)) {
    assert.ok(target && fs.existsSync(target), `${name} not found`);
    fs.symlinkSync(target, path.join(bin, name));
  }
}

/** This environment minus npm's and morec's variables, with the compiler-less PATH; onnxruntime-node's postinstall download skipped. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|MOREC_|NODE_TEST_CONTEXT$|NODE_OPTIONS$)/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k)) continue;
    e[k] = v;
  }
  return { ...e, PATH: bin, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_update_notifier: 'false', ...extra };
}

function run(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}, timeout = 240_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: env(extraEnv), encoding: 'utf8', timeout });
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}\n${r.stderr}`;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const stage = path.join(work, 'stage');
const project = path.join(work, 'project');
const installed = path.join(project, 'node_modules', 'morec');
let tarball = '';
/** What the prebuilt's build.json tells a user to install for its libtorch (Debian: apt-get install libtorch1.13 ...). */
let runtimeHint = '';

test('prebuild.js --from packages the addon as prebuilds/<platform>-<arch>-cpu with a build.json, and it loads', { skip }, () => {
  // A staged copy of what the package ships (its "files"), without any prebuilds/ the checkout may hold.
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  fs.mkdirSync(stage);
  for (const entry of [...pkg.files, 'package.json', 'README.md']) {
    if (entry === 'prebuilds' || !fs.existsSync(path.join(repo, entry))) continue;
    fs.cpSync(path.join(repo, entry), path.join(stage, entry), { recursive: true });
  }
  const r = spawnSync(process.execPath, [path.join(stage, 'scripts', 'prebuild.js'), '--from', built], { cwd: stage, encoding: 'utf8' });
  assert.equal(r.status, 0, out(r));
  assert.match(r.stdout, new RegExp(`${esc(prebuiltRel)} \\(cpu, libtorch [\\d.]+.*\\) loads`));
  const file = path.join(stage, prebuiltRel);
  const info = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'build.json'), 'utf8'));
  assert.equal(info.flavour, 'cpu');
  assert.equal(info.platform, process.platform);
  assert.equal(info.arch, process.arch);
  assert.equal(info.napiVersion, 8);
  assert.match(info.libtorch.version, /^\d+\.\d+/);
  assert.equal(info.sha256, crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(built)));
  assert.ok(info.needed.some((n: string) => /^libtorch_cpu\.so/.test(n)), info.needed.join(' '));
  runtimeHint = info.runtime.install || info.runtime.note;
  if (!process.env.MOREC_LIBTORCH) {
    // Debian's libtorch is on the loader's default path: no RUNPATH naming this machine's directories, and the
    // runtime package named is the one that owns it (libtorch1.13, not the -dev headers).
    assert.equal(info.runpath, null);
    if (which('dpkg')) assert.match(info.runtime.install, /^apt-get install libtorch\d[\d.]* /);
  }
});

test('npm pack ships the prebuilt; it installs into a project with no compiler on PATH without compiling', { skip }, (t) => {
  assert.ok(npmCli, 'npm not found');
  makeBin();
  const tools = run(path.join(bin, 'sh'), ['-c', 'command -v cc c++ gcc g++ make cmake ninja'], work);
  assert.equal(tools.stdout, '', `a compiler is on PATH: ${tools.stdout}`);
  const pack = run(process.execPath, [npmCli!, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], stage);
  assert.equal(pack.status, 0, out(pack));
  const [packed] = JSON.parse(pack.stdout);
  const files = packed.files.map((f: { path: string }) => f.path);
  for (const f of [prebuiltRel, prebuiltRel.replace('morec.node', 'build.json'), 'scripts/install.js', 'dist/lib/index.js', 'CMakeLists.txt']) assert.ok(files.includes(f), `${f} not in the tarball`);
  tarball = path.join(work, packed.filename);

  fs.mkdirSync(project);
  // npm 11 warns about dependencies whose install scripts the project has not approved in allowScripts (and says a
  // later npm will block them): the project approves morec's (a tarball's identity is file:<path>; a registry
  // install's is its name) and onnxruntime-node's, and --strict-allow-scripts proves the approval is enough.
  const allowScripts = { [`file:${tarball}`]: true, 'onnxruntime-node': true };
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'morec-install-test', version: '1.0.0', private: true, allowScripts }, null, 2));
  const started = Date.now();
  const r = run(process.execPath, [npmCli!, 'install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', '--strict-allow-scripts'], project);
  assert.equal(r.status, 0, out(r));
  assert.match(r.stdout, new RegExp(`morec: using prebuilt ${esc(prebuiltRel)} \\(libtorch [\\d.]+\\)`), out(r));
  assert.doesNotMatch(out(r), /compiling the addon/);
  assert.ok(!fs.existsSync(path.join(installed, 'build')), 'the install compiled');
  t.diagnostic(`npm install of the tarball, using its prebuilt: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('the installed package loads its prebuilt and trains one SASRec epoch', { skip }, () => {
  assert.ok(fs.existsSync(installed), 'not installed');
  const script = `
    const { Model, Sequences, loadAddon } = require('morec');
    const numItems = 30;
    const seqs = Sequences.fromArrays(Array.from({ length: 64 }, (_, u) => Array.from({ length: 6 + (u % 5) }, (_, i) => 1 + ((u + 2 * i) % numItems))), numItems);
    const model = Model.create({ backbone: 'sasrec', numItems, d: 16, maxLen: 8, seed: 1, threads: 1 });
    model.trainEpoch(seqs, { batchSize: 16, lr: 1e-3 }).then((r) => {
      const addon = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).find((p) => p && p.endsWith('morec.node'));
      console.log(JSON.stringify({ loss: r.loss, torch: loadAddon().torchInfo().version, addon, from: require.resolve('morec') }));
    });`;
  const r = run(process.execPath, ['-e', script], project);
  assert.equal(r.status, 0, out(r));
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(Number.isFinite(res.loss) && res.loss > 0, `loss ${res.loss}`);
  assert.equal(res.addon, fs.realpathSync(path.join(installed, prebuiltRel)));
  assert.ok(res.from.startsWith(fs.realpathSync(installed)), res.from);
});

test('a prebuilt that cannot load: the install script says why, falls back to compiling, and compiling needs a compiler', { skip }, () => {
  assert.ok(fs.existsSync(installed), 'not installed');
  const script = path.join(installed, 'scripts', 'install.js');
  const prebuilt = path.join(installed, prebuiltRel);
  const good = fs.readFileSync(prebuilt);
  const expectFallback = (r: SpawnSyncReturns<string>, why: RegExp) => {
    assert.equal(r.status, 1, out(r));
    assert.match(r.stdout, /morec: no prebuilt addon loads here:/);
    assert.match(r.stdout, why, out(r));
    assert.match(r.stdout, /morec: compiling the addon from source: cmake-js compile --out build/);
    assert.match(r.stderr, /could not install its native addon/);
    assert.match(r.stderr, /Compiling failed.*: compiling needs libtorch-dev, cmake, make and a C\+\+17 compiler/);
    assert.match(r.stderr, /scripts\/setup-debian\.sh/);
    assert.match(r.stderr, /a prebuilt needs only the libtorch runtime: on Debian apt-get install libtorch/);
  };
  try {
    // A flavour this package has no prebuilt of.
    expectFallback(run(process.execPath, [script], installed, { MOREC_FLAVOUR: 'cuda' }), new RegExp(`prebuilds/${platformDir}-cuda/morec.node: not present\\n\\s+prebuilds/${platformDir}/morec.node: not present`));
    // A corrupt prebuilt.
    fs.writeFileSync(prebuilt, Buffer.alloc(4096, 'not an ELF file. '));
    expectFallback(run(process.execPath, [script], installed), new RegExp(`${esc(prebuiltRel)}: not a loadable binary for ${platformDir} \\(.*invalid ELF header`));
    // A prebuilt whose libtorch is not installed: its DT_NEEDED libc10.so.X.Y rewritten in place to a version no
    // system has; the install script and the loader both name the runtime package from build.json.
    const needed = JSON.parse(fs.readFileSync(path.join(path.dirname(prebuilt), 'build.json'), 'utf8')).needed.find((n: string) => /^libc10\.so/.test(n));
    const absent = needed.replace(/\.so\..*$/, (v: string) => v.replace(/\d/g, '9')); // libc10.so.1.13 -> libc10.so.9.99
    let patched = Buffer.from(good);
    for (let at = patched.indexOf(needed); at >= 0; at = patched.indexOf(needed, at + 1)) patched.write(absent, at, 'latin1');
    fs.writeFileSync(prebuilt, patched);
    expectFallback(
      run(process.execPath, [script], installed),
      new RegExp(`${esc(prebuiltRel)}: libtorch [\\d.]+ is not installed or not on the library path \\(.*${esc(absent)}: cannot open shared object file.*\\); install the runtime it was built against: ${esc(runtimeHint)}`),
    );
    const load = run(process.execPath, ['-e', "require('morec').loadAddon()"], project);
    assert.notEqual(load.status, 0);
    assert.match(load.stderr, /could not load its native addon/);
    assert.match(load.stderr, new RegExp(`${esc(prebuiltRel)}: libtorch is not installed .*This prebuilt needs the libtorch runtime; on Debian: ${esc(runtimeHint)}`));
  } finally {
    fs.writeFileSync(prebuilt, good);
  }
});

test('MOREC_BUILD_FROM_SOURCE=1 compiles even when a prebuilt loads', { skip }, () => {
  assert.ok(fs.existsSync(installed), 'not installed');
  const r = run(process.execPath, [path.join(installed, 'scripts', 'install.js')], installed, { MOREC_BUILD_FROM_SOURCE: '1' });
  assert.equal(r.status, 1, out(r));
  assert.match(r.stdout, /MOREC_BUILD_FROM_SOURCE is set: not using a prebuilt/);
  assert.match(r.stderr, /Compiling failed/);
  assert.doesNotMatch(r.stderr, /No prebuilt addon loads here/);
});
