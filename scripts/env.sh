# Sourced by the scripts in this folder: installs what the build needs when it is missing and
# points cargo at one shared target directory outside the clone, so that a fresh clone (CI's
# included) reuses the RocksDB C++ build of earlier runs on this machine.
set -euo pipefail

MAGNETAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MAGNETAR_TARGET_DIR:-$HOME/.cache/magnetar-target}}"
# One profile (release, incremental) for running, testing and benchmarking.
export CARGO_PROFILE="release"

need_apt=()
# bindgen (for RocksDB's C API) loads libclang at build time.
# (libclang-cpp, which some base images carry, is not it.)
have_libclang=""
for lib in /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
  /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so*; do
  [ -e "$lib" ] && have_libclang=1
done
[ -n "$have_libclang" ] || need_apt+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# Our protocol crate brings its own protoc; the `pulsar` crate (the Rust client the compatibility
# tests drive) runs prost-build with the system one.
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "==> installing build prerequisites: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
