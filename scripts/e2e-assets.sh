#!/usr/bin/env bash
# Prepares the assets of the QEMU end-to-end harness in .cache/e2e/ (git-ignored):
#   vmlinuz        Debian's kernel (linux-image-<ver>-amd64, unpacked, not installed)
#   initrd.gz      tiny busybox-static initrd; /init prints the boot marker and powers off
#   pxelinux.0 ldlinux.c32 syslinux.efi ldlinux.e64   copied from the installed Debian packages
#   d-i/linux d-i/initrd.gz   (only with --installer) Debian 12 netboot installer
#   arm64/vmlinuz arm64/initrd.gz   (only with --arm64) Debian's arm64 kernel (linux-image-arm64:
#                  an uncompressed Image) and the same marker initrd around busybox-static:arm64,
#                  both from `apt-get download` through a private apt state in arm64/apt/ (the
#                  machine's dpkg architectures are not changed)
#
# Idempotent and offline-safe: once a file is cached nothing touches the network.
# Needs Debian packages: pxelinux syslinux-common syslinux-efi busybox-static cpio
# (apt-get download needs the Debian mirror only the first time).
#
# Usage: scripts/e2e-assets.sh [--installer] [--arm64] [CACHE_DIR]
# Prints the cache directory on stdout when done.
set -euo pipefail

WANT_INSTALLER=0
WANT_ARM64=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --installer) WANT_INSTALLER=1 ;;
    --arm64) WANT_ARM64=1 ;;
    *) printf 'e2e-assets: unknown option %s\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${1:-${E2E_CACHE:-$ROOT/.cache/e2e}}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

log() { printf 'e2e-assets: %s\n' "$*" >&2; }

# flock: several test files / the benchmark may prepare the cache at the same time.
exec 9>"$CACHE/.lock"
flock -w 600 9 || { log "cache lock busy for 600 s"; exit 3; }

APT_UPDATED=0
apt_download() { # PKG DESTDIR -> path of the .deb
  local pkg=$1 dest=$2 deb
  mkdir -p "$dest"
  deb=$(ls "$dest"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [[ -z $deb ]]; then
    if ! (cd "$dest" && apt-get download "$pkg" >&2); then
      if [[ $APT_UPDATED == 0 ]]; then
        APT_UPDATED=1
        apt-get update >&2
        (cd "$dest" && apt-get download "$pkg" >&2)
      else
        return 1
      fi
    fi
    deb=$(ls "$dest"/"${pkg}"_*.deb | head -n1)
  fi
  printf '%s\n' "$deb"
}

resolve_kernel_pkg() {
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [[ -z $pkg && $APT_UPDATED == 0 ]]; then
    APT_UPDATED=1
    apt-get update >&2
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [[ -n $pkg ]] || { log "cannot resolve the package linux-image-amd64 depends on"; return 1; }
  printf '%s\n' "$pkg"
}

# --- kernel --------------------------------------------------------------------
if [[ ! -s $CACHE/vmlinuz ]]; then
  kpkg=$(resolve_kernel_pkg)
  log "kernel package: $kpkg"
  deb=$(apt_download "$kpkg" "$CACHE/debs")
  rm -rf "$CACHE/kpkg.tmp"
  # Only boot/ is needed; extracting the whole package (modules) costs ~400 MB.
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$CACHE" --transform 's,^\./boot/,kpkg.tmp/,' --wildcards './boot/vmlinuz-*'
  vm=$(ls "$CACHE"/kpkg.tmp/vmlinuz-* | head -n1)
  cp "$vm" "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
  basename "$vm" > "$CACHE/vmlinuz.version"
  rm -rf "$CACHE/kpkg.tmp" "$deb"
fi

# --- bootloaders (installed Debian packages pxelinux, syslinux-common, syslinux-efi) ----
copy_if_missing() { # SRC NAME PACKAGE
  if [[ ! -s $CACHE/$2 ]]; then
    [[ -s $1 ]] || { log "missing $1 (apt-get install $3)"; exit 1; }
    cp "$1" "$CACHE/$2.tmp" && mv "$CACHE/$2.tmp" "$CACHE/$2"
  fi
}
copy_if_missing /usr/lib/PXELINUX/pxelinux.0 pxelinux.0 pxelinux
copy_if_missing /usr/lib/syslinux/modules/bios/ldlinux.c32 ldlinux.c32 syslinux-common
copy_if_missing /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi syslinux.efi syslinux-efi
copy_if_missing /usr/lib/syslinux/modules/efi64/ldlinux.e64 ldlinux.e64 syslinux-common

# --- initrd --------------------------------------------------------------------
# The marker proves three things: the kernel and initrd came over the network, which
# config file pxelinux/syslinux picked (cfg= is put on the kernel command line by that
# file), and which firmware booted (read from /sys/firmware/efi, not from the config).
# sb= is the kernel's own word on UEFI Secure Boot (its "secureboot: Secure boot enabled"
# line, read from the ring buffer, so a quiet console still tells).
INIT_VERSION=5
build_initrd() { # BUSYBOX OUT: a cpio.gz whose /init prints the marker and powers off
  local busybox=$1 out=$2 tmp
  tmp=$(mktemp -d "$CACHE/initrd.XXXXXX")
  mkdir -p "$tmp"/{bin,dev,proc,sys}
  cp "$busybox" "$tmp/bin/busybox"
  # Without /dev/console the kernel opens no stdin/stdout for /init and the marker is lost.
  mknod -m 600 "$tmp/dev/console" c 5 1
  mknod -m 666 "$tmp/dev/null" c 1 3
  # fw: uefi when the kernel came up through UEFI; on a device-tree machine without UEFI
  # (U-Boot's booti), "uboot" when U-Boot put its version in /chosen, else "dt".
  cat > "$tmp/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
cfg=none
for w in $(cat /proc/cmdline); do
  case $w in cfg=*) cfg=${w#cfg=} ;; esac
done
if [ -d /sys/firmware/efi ]; then fw=uefi
elif [ -e /proc/device-tree/chosen/u-boot,version ]; then fw=uboot
elif [ -d /proc/device-tree ]; then fw=dt
else fw=bios; fi
if dmesg | grep -q 'secureboot: Secure boot enabled'; then sb=on; else sb=off; fi
echo "PXE-E2E-OK cfg=$cfg fw=$fw sb=$sb"
sync
poweroff -f
EOF
  chmod 755 "$tmp/init"
  (cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}
if [[ ! -s $CACHE/initrd.gz || "$(cat "$CACHE/initrd.version" 2>/dev/null)" != "$INIT_VERSION" ]]; then
  [[ -x /bin/busybox ]] || { log "missing /bin/busybox (apt-get install busybox-static)"; exit 1; }
  /bin/busybox --help 2>&1 | grep -q 'static' || file -L /bin/busybox 2>/dev/null | grep -q static ||
    log "warning: /bin/busybox may not be static (busybox-static expected)"
  build_initrd /bin/busybox "$CACHE/initrd.gz"
  echo "$INIT_VERSION" > "$CACHE/initrd.version"
fi

# --- arm64 kernel + marker initrd (optional) -------------------------------------
# A private apt state (lists + archives under arm64/apt/) that knows only the arm64
# architecture: `apt-get download` then fetches arm64 packages from the same sources
# without `dpkg --add-architecture` on this machine.
if [[ $WANT_ARM64 == 1 && ( ! -s $CACHE/arm64/vmlinuz || ! -s $CACHE/arm64/initrd.gz ||
      "$(cat "$CACHE/arm64/initrd.version" 2>/dev/null)" != "$INIT_VERSION" ) ]]; then
  A=$CACHE/arm64/apt
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$CACHE/arm64/debs"
  apt64=(-q -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o "Dir::State::Lists=$A/lists"
    -o "Dir::Cache=$A/cache" -o Dir::State::status=/dev/null)
  kpkg64=$(apt-cache "${apt64[@]}" depends linux-image-arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
  if [[ -z $kpkg64 ]]; then
    apt-get "${apt64[@]}" update >&2
    kpkg64=$(apt-cache "${apt64[@]}" depends linux-image-arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [[ -n $kpkg64 ]] || { log "cannot resolve the package linux-image-arm64 depends on"; exit 1; }
  get64() { # PKG -> path of its arm64 .deb in arm64/debs
    local deb
    deb=$(ls "$CACHE/arm64/debs/${1}"_*_arm64.deb 2>/dev/null | head -n1 || true)
    if [[ -z $deb ]]; then
      (cd "$CACHE/arm64/debs" && apt-get "${apt64[@]}" download "$1:arm64" >&2)
      deb=$(ls "$CACHE/arm64/debs/${1}"_*_arm64.deb | head -n1)
    fi
    printf '%s\n' "$deb"
  }
  if [[ ! -s $CACHE/arm64/vmlinuz ]]; then
    log "arm64 kernel package: $kpkg64"
    deb=$(get64 "$kpkg64")
    rm -rf "$CACHE/arm64/kpkg.tmp"
    # Only boot/ is needed (the modules are ~400 MB unpacked).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$CACHE/arm64" --transform 's,^\./boot/,kpkg.tmp/,' --wildcards './boot/vmlinuz-*'
    vm=$(ls "$CACHE"/arm64/kpkg.tmp/vmlinuz-* | head -n1)
    cp "$vm" "$CACHE/arm64/vmlinuz.tmp" && mv "$CACHE/arm64/vmlinuz.tmp" "$CACHE/arm64/vmlinuz"
    basename "$vm" > "$CACHE/arm64/vmlinuz.version"
    rm -rf "$CACHE/arm64/kpkg.tmp" "$deb"
  fi
  deb=$(get64 busybox-static)
  rm -rf "$CACHE/arm64/bb.tmp" && mkdir -p "$CACHE/arm64/bb.tmp"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$CACHE/arm64/bb.tmp" ./bin/busybox
  build_initrd "$CACHE/arm64/bb.tmp/bin/busybox" "$CACHE/arm64/initrd.gz"
  echo "$INIT_VERSION" > "$CACHE/arm64/initrd.version"
  rm -rf "$CACHE/arm64/bb.tmp"
fi

# --- Debian 12 installer (optional) --------------------------------------------
if [[ $WANT_INSTALLER == 1 && ! -s $CACHE/d-i/initrd.gz ]]; then
  deb=$(apt_download debian-installer-12-netboot-amd64 "$CACHE/debs")
  rm -rf "$CACHE/d-i.tmp" && mkdir -p "$CACHE/d-i.tmp"
  # Only the text-mode netboot kernel + initrd (the package holds ~130 MB of images).
  sub=usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$CACHE/d-i.tmp" "./$sub/linux" "./$sub/initrd.gz"
  src="$CACHE/d-i.tmp/$sub"
  mkdir -p "$CACHE/d-i"
  cp "$src/linux" "$CACHE/d-i/linux"
  cp "$src/initrd.gz" "$CACHE/d-i/initrd.gz.tmp" && mv "$CACHE/d-i/initrd.gz.tmp" "$CACHE/d-i/initrd.gz"
  rm -f "$deb"
  rm -rf "$CACHE/d-i.tmp"
fi

printf '%s\n' "$CACHE"
