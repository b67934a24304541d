#!/usr/bin/env node
// Prints libtorch's include directories or link flags for binding.gyp (node-gyp), from the same place
// CMakeLists.txt looks: MOREC_LIBTORCH (a libtorch root with include/ and lib/) or Debian's libtorch-dev.
'use strict';
const fs = require('fs');
const path = require('path');

const rootDir = process.env.MOREC_LIBTORCH;
const what = process.argv[2];
let includes, libs;
if (rootDir) {
  const inc = path.join(rootDir, 'include');
  const lib = path.join(rootDir, 'lib');
  includes = [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')];
  libs = [`-L${lib}`, `-Wl,-rpath,${lib}`, '-ltorch', '-ltorch_cpu', '-lc10'];
  for (const cuda of ['torch_cuda', 'c10_cuda']) if (fs.existsSync(path.join(lib, `lib${cuda}.so`))) libs.push(`-l${cuda}`);
} else {
  includes = ['/usr/include', '/usr/include/torch/csrc/api/include'];
  // Gloo (c10d's CPU backend, data-parallel training): headers and libgloo.so from libgloo-dev.
  libs = ['-ltorch', '-ltorch_cpu', '-lc10', '-lgloo'];
}
process.stdout.write((what === 'libs' ? libs : includes).join(' ') + '\n');
