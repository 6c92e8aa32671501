#!/usr/bin/env bash
# Makes the toolchain of rust-toolchain.toml available without downloading anything: where
# rustup has the same release only as `stable`, it links the pinned name to it (what
# `rustup toolchain install` would fetch is then already there). Fails with a clear message if
# neither is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
[[ -n $want ]] || { echo "error: rust-toolchain.toml names no channel"; exit 1; }
command -v rustup >/dev/null || exit 0 # no rustup: cargo on PATH is used as it is
if rustup toolchain list | grep -q "^$want-"; then exit 0; fi
stable=$(rustc +stable --version 2>/dev/null | cut -d' ' -f2 || true)
if [[ $stable == "$want" ]]; then
  host=$(rustc +stable -vV | sed -n 's/^host: //p')
  ln -s "$(rustc +stable --print sysroot)" "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$want-$host"
  echo "rust-toolchain.toml: $want is the installed stable; linked"
  exit 0
fi
echo "error: rust-toolchain.toml pins Rust $want, which is not installed (stable is ${stable:-absent});"
echo "       rustup toolchain install $want"
exit 1
