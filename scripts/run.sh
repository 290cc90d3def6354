#!/bin/bash
# Installs the build dependencies, builds, and runs `outpost serve` on its
# embedded defaults: spool in ./data, submission on 127.0.0.1:2525 (loopback
# clients need no authentication), admin API and /metrics on 127.0.0.1:8025.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOUTPOST_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "outpost built: ./build/outpost; starting it (Ctrl-C stops it)"
exec ./build/outpost serve "$@"
