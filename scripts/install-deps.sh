#!/usr/bin/env bash
# Installs everything pxe's tests and benchmarks need on a fresh Debian 12 machine
# (run as root): the real peers the tests talk to (tftp-hpa, atftp, curl, dnsmasq,
# QEMU with iPXE/SeaBIOS/OVMF firmware), the bootloaders, the npm dependencies, and
# the cached boot assets (a Debian kernel, a busybox initrd, the Debian installer).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# Never let package post-install scripts start the peers' daemons (tftpd-hpa on :69,
# dnsmasq on :53/:67) on the machine's real interfaces: the tests start their own,
# on loopback or inside network namespaces.
created_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT

packages=(
  # TFTP peers: clients used by the tests, servers measured by the benchmarks
  tftp-hpa atftp tftpd-hpa curl
  # the HTTP peer the /files/ benchmark and the Range/conditional test compare with
  # (started by them on loopback high ports; policy-rc.d keeps the package's own off)
  nginx-light
  # site DHCP server (and proxy peer for benchmarks) in test namespaces; non-PXE client
  dnsmasq-base udhcpc busybox-static
  # real firmware end to end
  qemu-system-x86 ipxe-qemu seabios ovmf
  # ARM64 boards: qemu-system-aarch64 running Debian's U-Boot (qemu_arm64)
  qemu-system-arm u-boot-qemu
  # mkimage: the unit test checks pxe's boot.scr.uimg against it byte for byte
  u-boot-tools
  # bootloaders served to the VMs and provisioned by `pxe sync` (shim + signed GRUB: Secure Boot)
  pxelinux syslinux-common syslinux-efi ipxe shim-signed grub-efi-amd64-signed
  # namespaces, initrd building, captures, test OpenPGP keys, non-root capability test
  iproute2 cpio gzip tcpdump gnupg util-linux systemd
  # checkers the render tests use: xmllint (AutoYaST), grub-script-check, debconf-set-selections
  libxml2-utils grub-common debconf
  # DHCP servers that check the output of `pxe dhcp-config`
  isc-dhcp-server kea-dhcp4-server
  # the dashboard tests drive Debian's Chromium headless (playwright-core, no browser download)
  chromium fonts-dejavu-core
  # archives the sync tests build (Ubuntu netboot tarball, memtest zip)
  zip tar
  # `npm ci` builds src/native/udp.c (node-gyp against the Node headers); the tbf
  # qdisc of the native socket test comes with iproute2 (tc)
  g++ make python3
)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
mkdir -p .cache
[[ -x scripts/peers.sh ]] && scripts/peers.sh
[[ -x scripts/e2e-assets.sh ]] && scripts/e2e-assets.sh --installer --arm64 >/dev/null
echo "install-deps: ok"
