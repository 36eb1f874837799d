#!/usr/bin/env bash
# Installs, from Debian's apt, every package campaignd needs to build, run and
# test. Installs nothing when all are present. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format clang libclang-rt-14-dev lld
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlitecpp-dev libsqlite3-dev libssl-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libphonenumber-dev libre2-dev
  libgtest-dev libgmock-dev
  golang-go golang-grpc-gateway golang-github-grpc-ecosystem-grpc-gateway-dev
  golang-google-protobuf-dev golang-goprotobuf-dev
  grpc-proto python3 python3-grpcio python3-grpc-tools curl
  libtomlplusplus-dev libcurl4-openssl-dev libmicrohttpd-dev libjemalloc-dev
  libsmpp34-dev nodejs python3-aiosmtpd openssl
  dpkg-dev lintian systemd prometheus-cpp-dev prometheus
  postgresql-15 libpq-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
# npm ships with some nodejs builds (NodeSource) and separately in Debian's.
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "Installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
