#!/usr/bin/env bash
# Installs what building and testing Vaka needs on a fresh Debian machine. Idempotent and quick when
# everything is already there.
set -euo pipefail

# mosquitto: the peer broker of `vaka-load --peer mosquitto` (and its test).
apt_packages=(build-essential pkg-config clang libclang-dev protobuf-compiler mosquitto)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
