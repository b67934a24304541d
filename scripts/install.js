#!/usr/bin/env node
// npm's "install" script: uses a prebuilt addon (prebuilds/<platform>-<arch>-<flavour>/morec.node, made by
// scripts/prebuild.js) when one loads on this machine, and compiles with cmake-js (build/Release/morec.node) only
// when none does, saying why. MOREC_BUILD_FROM_SOURCE=1 always compiles; MOREC_FLAVOUR picks the prebuilt flavour
// (default cpu), as it does for the loader (lib/native.ts). A git checkout always compiles (`npm ci` there builds
// build/, as before). npm shows this script's output with --foreground-scripts, and always when it fails.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const DEBIAN_RUNTIME = 'apt-get install libtorch1.13 libopenblas0-openmp';
const BUILD_NEEDS =
  'compiling needs libtorch-dev, cmake, make and a C++17 compiler (g++): on Debian `bash scripts/setup-debian.sh` installs them ' +
  '(apt-get install libtorch-dev libopenblas0-openmp cmake g++ make python3)';

const log = (line) => console.log(`morec: ${line}`);

/** The prebuilt binaries to try, in the loader's order: MOREC_FLAVOUR's (default cpu), then the unflavoured folder. */
function prebuiltCandidates() {
  const platform = `${process.platform}-${process.arch}`;
  const flavour = process.env.MOREC_FLAVOUR || 'cpu';
  return [path.join(root, 'prebuilds', `${platform}-${flavour}`, 'morec.node'), path.join(root, 'prebuilds', platform, 'morec.node')];
}

/** The build.json scripts/prebuild.js wrote beside a prebuilt, or {}. */
function buildInfo(file) {
  try {
    return JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'build.json'), 'utf8'));
  } catch {
    return {};
  }
}

/** Why a binary did not load, in words (the same cases as explain() in lib/native.ts). */
function explain(file, message, prebuilt) {
  const first = message.split('\n').find((l) => l.trim()) || message;
  if (/lib(torch|torch_cpu|torch_cuda|c10|c10_cuda)\b[^:]*: cannot open shared object file/.test(message)) {
    const info = prebuilt ? buildInfo(file) : {};
    const install = (info.runtime && (info.runtime.install || info.runtime.note)) || DEBIAN_RUNTIME;
    return `libtorch${info.libtorch ? ` ${info.libtorch.version}` : ''} is not installed or not on the library path (${first.trim()}); install the runtime it was built against: ${install}`;
  }
  if (/GLIBC_|GLIBCXX_|CXXABI_/.test(message)) return `built on a newer system than this one (its C or C++ runtime is too old: ${first.trim()})`;
  if (/undefined symbol/.test(message)) return `built against another libtorch than the one installed (${first.trim()})`;
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js version/.test(message)) return `built for another Node.js ABI (${first.trim()})`;
  if (/invalid ELF header|file too short|wrong ELF class|not a dynamic executable/.test(message)) return `not a loadable binary for ${process.platform}-${process.arch} (${first.trim()})`;
  return first.trim();
}

/** Loads a binary in a child process (a crash there cannot take this script down); returns torchInfo() or the reason. */
function tryLoad(file, prebuilt) {
  if (!fs.existsSync(file)) return { error: 'not present' };
  const script = `let r;
    try { r = { info: require(${JSON.stringify(file)}).torchInfo() }; } catch (e) { r = { error: String((e && e.message) || e) }; }
    process.stdout.write(JSON.stringify(r));`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  let r;
  try {
    r = JSON.parse(child.stdout);
  } catch {
    r = { error: (child.stderr || '').trim().split('\n').pop() || `the process ended with ${child.signal || `exit code ${child.status}`}` };
  }
  return r.info ? r : { error: explain(file, r.error, prebuilt) };
}

/** cmake-js compile --out build, with the cmake-js this package depends on; exits non-zero when it fails. */
function compile(why) {
  let cmakeJs;
  try {
    cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  } catch {
    cmakeJs = null;
  }
  log('compiling the addon from source: cmake-js compile --out build');
  const r = cmakeJs
    ? spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' })
    : { status: 1, error: new Error('cmake-js is not installed (node_modules/cmake-js)') };
  const built = path.join(root, 'build', 'Release', 'morec.node');
  const loaded = r.status === 0 ? tryLoad(built, false) : null;
  if (loaded && loaded.info) {
    log(`built ${path.relative(root, built)} (libtorch ${loaded.info.version})`);
    return;
  }
  const lines = ['', 'morec: could not install its native addon.'];
  if (why.length) {
    const runtime = prebuiltCandidates().map((f) => buildInfo(f).runtime).find((rt) => rt && rt.install);
    lines.push('  No prebuilt addon loads here:', ...why.map((w) => `    ${w}`), `    (a prebuilt needs only the libtorch runtime: on Debian ${runtime ? runtime.install : DEBIAN_RUNTIME})`);
  }
  if (r.status !== 0) lines.push(`  Compiling failed${r.error ? ` (${r.error.message})` : ''}: ${BUILD_NEEDS}.`);
  else lines.push(`  Compiling succeeded but ${path.relative(root, built)} does not load: ${loaded.error}`);
  lines.push('  Then run `npm rebuild morec`.');
  console.error(lines.join('\n'));
  process.exit(1);
}

function main() {
  if (/^(1|true|yes)$/i.test(process.env.MOREC_BUILD_FROM_SOURCE || '')) {
    log('MOREC_BUILD_FROM_SOURCE is set: not using a prebuilt');
    return compile([]);
  }
  // A git checkout (`npm ci` while developing) builds its sources: prebuilds/ there is a release artifact that may
  // be older than them. An installed package never has .git.
  if (fs.existsSync(path.join(root, '.git'))) {
    log('a git checkout: compiling its sources (prebuilds/ are for installed packages)');
    return compile([]);
  }
  const why = [];
  for (const file of prebuiltCandidates()) {
    const r = tryLoad(file, true);
    const rel = path.relative(root, file);
    if (r.info) {
      log(`using prebuilt ${rel} (libtorch ${r.info.version})`);
      return;
    }
    why.push(`${rel}: ${r.error}`);
  }
  log(`no prebuilt addon loads here:\n  ${why.join('\n  ')}`);
  compile(why);
}

main();
