#!/usr/bin/env bash
# Builds the airlock program that `airlock export` puts beside volume 1 so that it starts on the
# oldest sites: glibc 2.17 (RHEL/CentOS 7, Kylin, openEuler), stripped (issue 17).
#
#   tools/release/portable.sh [x86_64|aarch64]
#   airlock export REF... --out DIR --binary target/x86_64-unknown-linux-gnu/dist/airlock
#
# It links against glibc 2.17's symbols with zig's C toolchain through cargo-zigbuild:
#   python3 -m pip install ziglang        (PyPI; the zig compiler as a Python package)
#   cargo install cargo-zigbuild --locked  (crates.io)
# aarch64 (ARM sites, e.g. Kunpeng) also needs the Rust standard library for that target where the
# toolchain has it (`rustup target add aarch64-unknown-linux-gnu`); zig brings the C side.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch=${1:-x86_64}
case "$arch" in
  x86_64|aarch64) ;;
  *) echo "portable.sh: unknown architecture $arch (x86_64 or aarch64)" >&2; exit 2 ;;
esac
target="$arch-unknown-linux-gnu"

if ! python3 -m ziglang version >/dev/null 2>&1 && ! command -v zig >/dev/null 2>&1; then
  echo "portable.sh: zig is missing: python3 -m pip install ziglang" >&2
  exit 2
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "portable.sh: cargo-zigbuild is missing: cargo install cargo-zigbuild --locked" >&2
  exit 2
fi

cargo zigbuild --profile dist -p airlock --target "$target.2.17"
out="${CARGO_TARGET_DIR:-target}/$target/dist/airlock"

# The newest glibc symbol version the program needs must be 2.17 or older.
if command -v objdump >/dev/null 2>&1; then
  newest=$(objdump -T "$out" | grep -o 'GLIBC_2\.[0-9.]*' | sort -uV | tail -1)
  echo "$out needs $newest at most"
  case "$newest" in
    GLIBC_2.1[0-7]|GLIBC_2.1[0-7].*|GLIBC_2.[0-9]|GLIBC_2.[0-9].*) ;;
    *) echo "portable.sh: $out needs $newest, newer than 2.17" >&2; exit 1 ;;
  esac
fi
if [ "$arch" = "$(uname -m)" ]; then
  "$out" --version
fi
ls -l "$out"
