#!/usr/bin/env bash
# Proves binding.gyp builds the same addon as CMakeLists.txt: builds with node-gyp in a scratch copy of the
# sources (so the cmake-js build/ is untouched), then runs the reference and ranking tests against that
# binary (MOREC_ADDON makes the loader use it and nothing else). Needs `npm run build:ts` first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/native" "$root/binding.gyp" "$root/package.json" "$root/scripts" "$work/"
ln -s "$root/node_modules" "$work/node_modules"
# Node's headers offline: the npm nodedir setting, else the prefix of this node when it ships include/node.
nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$nodedir" ] || [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ]; then
  nodedir="$(dirname "$(dirname "$(command -v node)")")"
fi
[ -f "$nodedir/include/node/node_api.h" ] || { echo "no Node headers under $nodedir/include/node"; exit 1; }
echo "node-gyp: building in $work (nodedir $nodedir)"
(cd "$work" && JOBS="${JOBS:-2}" "$root/node_modules/.bin/node-gyp" rebuild --nodedir="$nodedir" -j "${JOBS:-2}" >"$work/gyp.log" 2>&1) || { tail -40 "$work/gyp.log"; exit 1; }
addon="$work/build/Release/morec.node"
test -f "$addon"
echo "node-gyp: built $addon; running the smoke tests against it"
cd "$root"
MOREC_ADDON="$addon" node --test dist/test/sasrec_reference.test.js dist/test/ranking.test.js dist/test/async.test.js
