#!/bin/bash
# Builds the Debian image the booted end-to-end test copies for each VM:
#
#   bash image.sh OUT SUITE "BASE PACKAGES" "OFFERED PACKAGES" [MIRROR]
#
# - debootstrap --variant=minbase SUITE, with BASE PACKAGES: what a fresh
#   Debian with systemd as init has (systemd, dbus and the "important" tools a
#   netinst installs: procps, iproute2, nftables, ...);
# - OFFERED PACKAGES are downloaded into the image's apt cache (with current
#   package lists) but not installed: the README's `apt-get install` lines, run
#   inside the booted VMs, which have no network, install them from there, so a
#   package the README forgets is missing in the VM as it would be for real;
# - console-getty.service is masked: the VM's console is a null device, not a
#   terminal, so a getty there could only fail (a VM image without a console
#   login, which is all it changes);
# - /etc/machine-id is emptied (each VM gets its own when copied);
# - /var/log/journal exists, as systemd's postinst makes it on a new install
#   (debootstrap's configure run skips it): the journal persists across a
#   VM's reboots, as on a Debian 12 VM.
#
# It writes OUT.tmp-$$ and renames it to OUT at the end, so a half-built image
# is never used and two runs building at once cannot mix their files (the
# loser's copy is removed).
set -euo pipefail
OUT=$1
SUITE=$2
BASE=$3
OFFERED=$4
MIRROR=${5:-http://deb.debian.org/debian}
TMP="$OUT.tmp-$$"
cleanup() { rm -rf --one-file-system "$TMP"; }
trap cleanup EXIT

mkdir -p "$(dirname "$OUT")"
debootstrap --variant=minbase --include="${BASE// /,}" "$SUITE" "$TMP" "$MIRROR" >"$TMP.log" 2>&1 || {
  tail -20 "$TMP.log" >&2
  rm -f "$TMP.log"
  exit 1
}
rm -f "$TMP.log"

# apt inside the image, in a private mount namespace (proc and a minimal /dev
# for maintainer scripts), with the host's network for the download
unshare -m --propagation private bash -euo pipefail -c '
  R=$1; shift
  mount -t proc proc "$R/proc"
  mount -t tmpfs -o mode=755 dev "$R/dev"
  for n in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9"; do
    set -- $n; mknod -m 666 "$R/dev/$1" c "$2" "$3"
  done
  export DEBIAN_FRONTEND=noninteractive
  chroot "$R" apt-get -qq update
  chroot "$R" apt-get -qq clean
  chroot "$R" apt-get -qq install --download-only --no-install-recommends -y '"$OFFERED"'
' image "$TMP" >/dev/null

ln -sf /dev/null "$TMP/etc/systemd/system/console-getty.service"
mkdir -p "$TMP/var/log/journal"
: >"$TMP/etc/machine-id"
echo debian >"$TMP/etc/hostname"

if mv -T "$TMP" "$OUT" 2>/dev/null; then
  trap - EXIT
else
  echo "image.sh: $OUT was built by another run meanwhile; using it" >&2
fi
