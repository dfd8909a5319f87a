#!/usr/bin/env bash
# Install the Debian 12 packages airlock builds, tests and runs with -- only those missing.
set -euo pipefail
pkgs=(build-essential pkg-config clang libclang-rt-14-dev
      libssl-dev libjansson-dev libarchive-dev libmicrohttpd-dev libpcre2-dev libseccomp-dev
      libcmocka-dev minisign gpgv gnupg xxd prometheus python3 chromium curl mmdebstrap iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
