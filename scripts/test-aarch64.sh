#!/usr/bin/env bash
# Cross-builds Seed for ARM64 (aarch64-unknown-linux-gnu) and runs its kernel, model
# and golden tests under qemu-aarch64 (Debian's qemu-user), whose default CPU has NEON,
# dotprod and i8mm, so every ARM64 kernel level runs.
#
#   scripts/test-aarch64.sh            # install what is missing, build, test
#   scripts/test-aarch64.sh --setup    # only install what is missing
#
# The kernel tests run in full at every level (each ARM64 level must give the scalar
# kernels' bits). An emulator runs the models ~100x slower than the CPU it runs on, so
# the golden tests run at the best level on the first SEED_GOLDEN_CASES (default 1) of
# each golden file's cases; set SEED_GOLDEN_CASES=1000 for all of them (hours).
# crates/kernels/tests/aarch64_emulated.rs runs this script, so `cargo test --workspace`
# includes it; it needs root (or passwordless sudo) on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else echo "test-aarch64: run as root: $*" >&2; exit 1
  fi
}

if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
  || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET"
fi
[ "${1:-}" = --setup ] && { echo "test-aarch64: ready"; exit 0; }

# Its own target directory: this may run inside another cargo's `cargo test`, which
# holds the lock of the workspace's one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_AARCH64:-target/aarch64-emulated}"
export SEED_GOLDEN_CASES="${SEED_GOLDEN_CASES:-1}"
# The linker and runner come from .cargo/config.toml.
cargo test --release --target "$TARGET" -p kernels
cargo test --release --target "$TARGET" -p model
# SEED_KERNELS set: the golden tests do not rerun themselves at the other levels
# (the kernel tests above compare every level with the scalar kernels bit for bit).
SEED_KERNELS=i8mm cargo test --release --target "$TARGET" -p seed \
  --test golden_smollm2 --test golden_gemma3 --test golden_synthetic -- --test-threads 2
echo "test-aarch64: every test passed under qemu-aarch64"
