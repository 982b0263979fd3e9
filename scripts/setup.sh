#!/usr/bin/env bash
# Sets up pxe to run on this machine (Debian 12, as root): the bootloader packages,
# the npm dependencies, the build, and the bootloaders copied into ./tftproot.
# Then: node dist/cli.js serve   (or `npm link` once, then `pxe serve`)
set -euo pipefail
cd "$(dirname "$0")/.."

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("pxe needs Node.js >= 20.19 (this is "+process.version+")"); process.exit(1) }'

export DEBIAN_FRONTEND=noninteractive
# g++/make/python3: npm ci builds the native datagram socket (src/native/udp.c)
packages=(pxelinux syslinux-common syslinux-efi g++ make python3)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
npm ci --no-audit --no-fund
npm run build
mkdir -p tftproot
# Bootloaders only: the distro images come with `pxe sync` (needs the upstream mirrors).
node dist/cli.js sync --bootloaders-only
echo "setup: ok — now run: node dist/cli.js serve"
