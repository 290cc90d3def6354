#!/bin/bash
# Installs what the tests need, then builds and runs every test: the
# libFuzzer targets briefly, the Debian package, the whole suite (unit and end
# to end against real peers, the package's install among them) in a normal
# build, then again under AddressSanitizer + UBSan. The
# last lines are CTest's summary of the sanitizer run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-10} # a smoke run: campaigns run apart (docs/testing.md)

echo "== fuzz targets (${FUZZ_SECONDS}s each)"
CC=clang cmake -S . -B build-fuzz -DOUTPOST_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$JOBS" >/dev/null
for f in build-fuzz/fuzz_*; do
	name=$(basename "$f")
	mkdir -p "build-fuzz/corpus/$name"
	seeds="fuzz/corpus/$name"
	[ -d "$seeds" ] || seeds=""
	"$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 "build-fuzz/corpus/$name" $seeds \
		>"build-fuzz/$name.log" 2>&1 || { tail -40 "build-fuzz/$name.log"; echo "FUZZ FAILED: $name"; exit 1; }
	echo "$name: $(grep -o 'DONE.*' "build-fuzz/$name.log" | tail -1 || true)"
done

echo "== Debian package (tests/e2e/test_package.sh installs it into a scratch root)"
JOBS=$JOBS scripts/package.sh

echo "== normal build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS" >/dev/null
ctest --test-dir build --output-on-failure -j1

echo "== AddressSanitizer + UBSan build"
cmake -S . -B build-asan -DOUTPOST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$JOBS" >/dev/null
# the soak for half as long: its 90 s are already run above (CI stays under 30 min)
SOAK_SECONDS=${SOAK_SECONDS:-45} \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j1
