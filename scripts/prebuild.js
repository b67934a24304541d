#!/usr/bin/env node
// `npm run prebuild`: builds the addon for this platform in build-prebuild/ (the development build/ is left alone)
// and packages it as prebuilds/<platform>-<arch>-<flavour>/morec.node with a build.json beside it (N-API version,
// libtorch, flavour, compiler, sha256, and the libtorch runtime package a user installs), then proves the copy
// loads in a fresh process. A release is `npm run prebuild && npm pack` (or `npm publish`); scripts/install.js
// uses the prebuilt at install time when it loads there.
//   --from <morec.node>   package an existing build instead of compiling (CI, tests)
//   --flavour <name>      cpu or cuda; by default cuda when the addon links libtorch's CUDA libraries, else cpu
//   --rpath <dir:dir>     the RUNPATH to build with (CMake MOREC_PREBUILD_RPATH), e.g. '$ORIGIN/libtorch/lib' for a
//                         libtorch outside the loader's default path (MOREC_LIBTORCH); Debian's needs none
// MOREC_LIBTORCH selects another libtorch, as for every build (CMakeLists.txt).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { from: undefined, flavour: undefined, rpath: undefined };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(from|flavour|rpath)(?:=(.*))?$/.exec(argv[i]);
    if (!m) fail(`unknown argument ${argv[i]} (options: --from <morec.node>, --flavour <cpu|cuda>, --rpath <dirs>)`);
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) fail(`--${m[1]} needs a value`);
    opts[m[1]] = value;
  }
  if (opts.flavour !== undefined && !/^[a-z0-9]+$/.test(opts.flavour)) fail(`--flavour must be a plain name such as cpu or cuda, not ${opts.flavour}`);
  return opts;
}

/**
 * What an ELF shared object (Linux) links: DT_NEEDED, its RUNPATH/RPATH, and the .comment section (the compiler
 * that built it, e.g. "GCC: (Debian 12.2.0-14) 12.2.0"). null for other formats (macOS, Windows).
 */
function readElf(file) {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return null; // ELF64 little-endian only
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({ name: b.readUInt32LE(o), type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)), link: b.readUInt32LE(o + 0x28) });
  }
  const cstr = (off) => b.toString('latin1', off, b.indexOf(0, off));
  const names = sections[shstrndx];
  const needed = [];
  let runpath = null;
  const dynamic = sections.find((s) => s.type === 6); // SHT_DYNAMIC
  if (dynamic) {
    const strtab = sections[dynamic.link].offset;
    for (let o = dynamic.offset; o < dynamic.offset + dynamic.size; o += 16) {
      const tag = Number(b.readBigInt64LE(o));
      const val = Number(b.readBigUInt64LE(o + 8));
      if (tag === 0) break;
      if (tag === 1) needed.push(cstr(strtab + val)); // DT_NEEDED
      if (tag === 15 || tag === 29) runpath = cstr(strtab + val); // DT_RPATH, DT_RUNPATH
    }
  }
  const comment = sections.find((s) => names && cstr(names.offset + s.name) === '.comment');
  const compiler = comment
    ? [...new Set(b.toString('latin1', comment.offset, comment.offset + comment.size).split('\0').filter(Boolean))].join('; ')
    : null;
  return { needed, runpath, compiler };
}

/**
 * Builds with cmake-js from this package's node_modules (or a hoisted one), run with this node. The configure step
 * runs afresh each time (CMakeCache.txt removed), so MOREC_LIBTORCH and --rpath always take effect; the objects
 * are kept, so an unchanged source rebuilds quickly.
 */
function compile(rpath) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const out = 'build-prebuild';
  fs.rmSync(path.join(root, out, 'CMakeCache.txt'), { force: true });
  const configure = [cmakeJs, 'configure', '--out', out];
  if (rpath !== undefined) configure.push(`--CDMOREC_PREBUILD_RPATH=${rpath.split(':').join(';')}`);
  console.log(`prebuild: cmake-js configure/build --out ${out}${rpath !== undefined ? ` (RUNPATH ${rpath})` : ''}`);
  for (const args of [configure, [cmakeJs, 'build', '--out', out]]) {
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) fail(`cmake-js ${args[1]} failed (see above)`);
  }
  return path.join(root, out, 'Release', 'morec.node');
}

/**
 * Loads the addon in a child process, through the package's loader when dist/lib is built (MOREC_ADDON makes it
 * the only candidate) and by plain require otherwise; returns torchInfo() and the libtorch/BLAS shared objects
 * the process mapped (Linux), from which the runtime package is found.
 */
function verify(file) {
  const loader = path.join(root, 'dist', 'lib', 'native.js');
  const script = `
    const fs = require('fs');
    const addon = fs.existsSync(${JSON.stringify(loader)}) ? require(${JSON.stringify(loader)}).loadAddon() : require(${JSON.stringify(file)});
    const info = addon.torchInfo();
    let libs = [];
    try {
      libs = [...new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /\\/lib(torch|torch_cpu|torch_cuda|c10|c10_cuda|blas)\\.so/.test(p)))];
    } catch {}
    process.stdout.write(JSON.stringify({ info, libs }));`;
  const env = { ...process.env, MOREC_ADDON: file };
  delete env.MOREC_FLAVOUR;
  const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
  if (r.status !== 0) fail(`${file} does not load:\n${(r.stderr || '').trim()}`);
  return JSON.parse(r.stdout);
}

/** The Debian packages that own the mapped libraries (dpkg -S), e.g. libtorch1.13 and libopenblas0-openmp. */
function owningPackages(libs) {
  const packages = [];
  for (const lib of libs) {
    const r = spawnSync('dpkg', ['-S', fs.realpathSync(lib)], { encoding: 'utf8' });
    if (r.status !== 0) continue; // no dpkg, or not from a package (MOREC_LIBTORCH)
    const name = r.stdout.split(':')[0].trim();
    if (name && !packages.includes(name)) packages.push(name);
  }
  // A stable order whatever the mapping order (address-space randomization): libtorch's package first.
  const rank = (p) => (/^libtorch/.test(p) ? 0 : 1);
  return packages.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.from && opts.rpath !== undefined) fail('--rpath applies to a build; --from packages an existing one as it is');
  const source = opts.from ? path.resolve(opts.from) : compile(opts.rpath);
  if (!fs.existsSync(source)) fail(`${source} does not exist`);

  const elf = readElf(source);
  const linksCuda = !!elf && elf.needed.some((n) => /^lib(torch_cuda|c10_cuda)[.-]/.test(n));
  const flavour = opts.flavour || (linksCuda ? 'cuda' : 'cpu');
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}-${flavour}`);
  const dest = path.join(dir, 'morec.node');
  fs.mkdirSync(dir, { recursive: true });
  // Copy then rename, so a reader never sees half a binary.
  fs.copyFileSync(source, `${dest}.tmp`);
  fs.renameSync(`${dest}.tmp`, dest);

  const { info, libs } = verify(dest);
  const libtorchDir = libs.filter((l) => /libtorch_cpu\.so/.test(l)).map((l) => path.dirname(l))[0] || null;
  const packages = owningPackages(libs);
  const libtorchPackage = packages.find((p) => /^libtorch/.test(p));
  const runtime = libtorchPackage
    ? { packages, install: `apt-get install ${packages.join(' ')}`, libtorchDir }
    : { packages: [], install: null, libtorchDir, note: `libtorch ${info.version} from ${libtorchDir}: it must be on the addon's RUNPATH (${elf && elf.runpath ? elf.runpath : 'none'}) or LD_LIBRARY_PATH` };
  const bytes = fs.readFileSync(dest);
  const napiVersions = (pkg.binary && pkg.binary.napi_versions) || [];
  const build = {
    name: pkg.name,
    version: pkg.version,
    file: 'morec.node',
    platform: process.platform,
    arch: process.arch,
    flavour,
    napiVersion: napiVersions.length ? Math.max(...napiVersions) : null,
    builtWithNode: process.version,
    glibc: (process.report && process.report.getReport().header.glibcVersionRuntime) || null,
    libtorch: { version: info.version, cuda: linksCuda },
    compiler: elf ? elf.compiler : null,
    needed: elf ? elf.needed : null,
    runpath: elf ? elf.runpath : null,
    runtime,
    bytes: bytes.length,
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
    date: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(dir, 'build.json'), JSON.stringify(build, null, 2) + '\n');

  console.log(`prebuild: ${path.relative(root, dest)} (${flavour}, libtorch ${info.version}, ${(bytes.length / 1e6).toFixed(1)} MB, sha256 ${build.sha256.slice(0, 12)}...) loads`);
  console.log(`prebuild: users install the libtorch runtime: ${runtime.install || runtime.note}`);
  if (elf && elf.runpath && elf.runpath.split(':').some((p) => p.startsWith('/')))
    console.log(`prebuild: note: its RUNPATH names this machine's directories (${elf.runpath}); --rpath sets a portable one`);
}

main();
