#!/usr/bin/env bash
# pasteflow's one entry point on a fresh Debian 12 machine:
#   ./run.sh demo           install what is missing, build, run the main job on data/dsb_sample
#   ./run.sh test           install what is missing, build, run every test (ctest), then the
#                           sanitizer and fuzz phases: ASan+UBSan unit tests, TSan stage
#                           and pipeline tests, 10 s of each fuzz target (FUZZ_SECONDS)
#   ./run.sh huge           a huge image end to end on data/sample: generate mosaic, slice, train on
#                           views read by windows, sliced predict, eval (tools/huge_demo.sh, runs/huge/)
#   ./run.sh test-quick     the main tests without those labelled `slow`, no sanitizer/fuzz phases
#   ./run.sh build          install what is missing and build only
#   ./run.sh sanitize       build and run only the ASan+UBSan and TSan phases
#   ./run.sh fuzz [SECONDS] build the fuzz targets and run each SECONDS (default 600), two at once
# Environment: BUILD_DIR (default build), JOBS (default nproc), CI=true adds -Werror;
# ASAN_BUILD_DIR (build-asan), TSAN_BUILD_DIR (build-tsan), FUZZ_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${JOBS:-$(nproc)}
PACKAGES=(build-essential cmake ninja-build pkg-config
  libtbb-dev libopencv-dev libsimdjson-dev libtiff-dev libtorch-dev libgloo-dev
  libgtest-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libbenchmark-dev
  python3 python3-dev pybind11-dev python3-torchvision python3-numpy libopenblas0-pthread
  clang-14 libclang-rt-14-dev libvips-tools)
# The fuzz targets (fuzz/CMakeLists.txt), in the order they run.
FUZZ_TARGETS=(fuzz_coco fuzz_results fuzz_config fuzz_decode fuzz_rle_string fuzz_polygon fuzz_tiff fuzz_slice fuzz_masks fuzz_shard)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "pasteflow needs these Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

werror() { if [ "${CI:-}" = "true" ]; then echo ON; else echo OFF; fi; }

build() {
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPASTEFLOW_WERROR="$(werror)" >&2
  cmake --build "$BUILD_DIR" -j "$JOBS" >&2
}

# Prints "phase NAME: N s" to stderr after running the rest of the arguments.
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "phase $name: $((SECONDS - start)) s" >&2
}

# One clang tree for the ASan+UBSan unit tests and the fuzz targets: the
# layers without LibTorch, compiled with -fsanitize=address,undefined and
# libFuzzer's coverage (fuzzer-no-link); tests link ASan+UBSan, the fuzz
# targets libFuzzer too.
build_asan() {
  cmake -S . -B "$ASAN_BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPASTEFLOW_WERROR="$(werror)" -DPASTEFLOW_SANITIZE=address,undefined -DPASTEFLOW_FUZZ=ON \
    -DPASTEFLOW_WITH_TORCH=OFF -DPASTEFLOW_BUILD_BENCH=OFF >&2
  cmake --build "$ASAN_BUILD_DIR" -j "$JOBS" >&2
}

test_asan() {
  ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j "$JOBS" -L asan -LE slow
}

# TSan: the tests that share the stages' function objects between threads
# (std::thread) and the loader's whole-graph tests, in a clang tree with
# LibTorch of which only these targets are built. oneTBB's scheduler
# (libtbb.so, not instrumented) hides the hand-off of messages between
# threads; pipeline/tsan_edges.hpp declares those edges in our code and
# cmake/tsan.supp suppresses what is left inside TBB's own templates
# (fuzz/README.md, "Sanitizers"). LibTorch is not instrumented either: its
# OpenMP threads are held at one.
TSAN_TARGETS=(test_stages_paste test_pipeline_tsan_edges test_pipeline_loader test_pipeline_views)
build_tsan() {
  cmake -S . -B "$TSAN_BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPASTEFLOW_WERROR="$(werror)" -DPASTEFLOW_SANITIZE=thread -DPASTEFLOW_WITH_TORCH=ON \
    -DPASTEFLOW_BUILD_BENCH=OFF >&2
  cmake --build "$TSAN_BUILD_DIR" -j "$JOBS" --target "${TSAN_TARGETS[@]}" >&2
}

test_tsan() {
  # Suppressions: third-party frames only (cmake/tsan.supp).
  OMP_NUM_THREADS=1 TSAN_OPTIONS="suppressions=$PWD/cmake/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
    ctest --test-dir "$TSAN_BUILD_DIR" --output-on-failure -j "$JOBS" -L tsan -E '_NOT_BUILT$'
}

# run_fuzz SECONDS: every fuzz target for SECONDS from its seed corpus (the
# tests/data/ slices of fuzz/make_corpus.py, the regression inputs of
# tests/data/fuzz/<target>/ and what earlier runs in this tree added), two at
# once. Fails when any target reports a crash, hang, leak or sanitizer error;
# the input is then in $ASAN_BUILD_DIR/fuzz/findings/<target>/.
run_fuzz() {
  local seconds=$1 dir="$ASAN_BUILD_DIR/fuzz"
  cmake --build "$ASAN_BUILD_DIR" -j "$JOBS" --target fuzz_all >&2
  local t
  for t in "${FUZZ_TARGETS[@]}"; do
    mkdir -p "$dir/corpus/$t" "$dir/findings/$t"
    [ -d "tests/data/fuzz/$t" ] && cp -n tests/data/fuzz/$t/* "$dir/corpus/$t/" 2>/dev/null || true
  done
  printf '%s\n' "${FUZZ_TARGETS[@]}" |
    xargs -P 2 -I{} bash -c 'fuzz_one "$@"' _ {} "$seconds" "$dir"
}

# fuzz_one TARGET SECONDS DIR (run by xargs in a child bash).
fuzz_one() {
  local t=$1 seconds=$2 dir=$3 args=()
  case "$t" in
    fuzz_coco | fuzz_results | fuzz_slice) args=(-dict=fuzz/json.dict -max_len=8192) ;;
    fuzz_config) args=(-dict=fuzz/yaml.dict -max_len=4096) ;;
    fuzz_decode | fuzz_masks) args=(-max_len=4096) ;;
    fuzz_tiff) args=(-max_len=16384) ;;
    *) args=(-max_len=2048) ;;
  esac
  local log="$dir/findings/$t.log" rc=0 start=$SECONDS
  ASAN_OPTIONS=detect_leaks=1 "$dir/$t" "${args[@]}" -max_total_time="$seconds" -timeout=60 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/findings/$t/" \
    "$dir/corpus/$t" "$dir/seeds/$t" >"$log" 2>&1 || rc=$?
  local runs cov corpus took=$((SECONDS - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  corpus=$(ls "$dir/corpus/$t" | wc -l)
  echo "$t: exit $rc, ${runs:-0} runs in $took s ($(( ${runs:-0} / (took > 0 ? took : 1) )) exec/s), $cov, corpus $corpus" >&2
  if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" >&2 || true
    return 1
  fi
}
export -f fuzz_one

sanitize_phases() {
  timed asan-build build_asan
  timed asan-tests test_asan
  timed tsan-build build_tsan
  timed tsan-tests test_tsan
}

cmd=${1:-}
case "$cmd" in
  demo)
    install_missing; build
    tools/demo.sh "$BUILD_DIR"
    ;;
  huge)
    install_missing; build
    tools/huge_demo.sh "$BUILD_DIR"
    ;;
  test)
    install_missing
    timed build build
    timed tests ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    sanitize_phases
    timed fuzz-smoke run_fuzz "${FUZZ_SECONDS:-10}"
    ;;
  test-quick)
    install_missing; build
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" -LE slow
    ;;
  build)
    install_missing; build
    ;;
  sanitize)
    install_missing
    sanitize_phases
    ;;
  fuzz)
    install_missing
    timed asan-build build_asan
    timed fuzz run_fuzz "${2:-600}"
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
