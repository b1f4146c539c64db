#!/usr/bin/env bash
# pasteflow's one entry point on a fresh Debian 12 machine:
#   ./run.sh demo        install what is missing, build, run the main job on data/sample
#   ./run.sh test        install what is missing, build, run every test (ctest)
#   ./run.sh test-quick  the same without tests labelled `slow`
#   ./run.sh build       install what is missing and build only
# Environment: BUILD_DIR (default build), JOBS (default nproc), CI=true adds -Werror.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
PACKAGES=(build-essential cmake ninja-build pkg-config
  libtbb-dev libopencv-dev libsimdjson-dev libtiff-dev libtorch-dev
  libgtest-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libbenchmark-dev
  python3 python3-torchvision python3-numpy libopenblas0-pthread)

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

build() {
  local werror=OFF
  [ "${CI:-}" = "true" ] && werror=ON
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPASTEFLOW_WERROR=$werror >&2
  cmake --build "$BUILD_DIR" -j "$JOBS" >&2
}

cmd=${1:-}
case "$cmd" in
  demo)
    install_missing; build
    tools/demo.sh "$BUILD_DIR"
    ;;
  test)
    install_missing; build
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
    ;;
  test-quick)
    install_missing; build
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" -LE slow
    ;;
  build)
    install_missing; build
    ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
