#!/usr/bin/env bash
# System packages morec builds against on Debian (bookworm): libtorch (CPU) with OpenBLAS -- without
# libopenblas0-openmp libtorch falls back to a reference BLAS that trains 4-5x slower -- plus the C++
# toolchain and cmake for the addon, and libgloo-dev (the Gloo headers libtorch's c10d includes: data-parallel
# training). Runs apt-get as root, or through sudo.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends libtorch-dev libopenblas0-openmp libgloo-dev cmake g++ make python3
