#!/bin/bash
# Boots systemd as PID 1 in a Debian root file system, the way
# ../shared/design/booting-systemd.md measured it on our machines (where
# systemd-nspawn cannot set up /proc). Run it as the first process of fresh
# PID, mount, UTS and IPC namespaces, already inside the VM's network namespace:
#
#   nsenter --net=/run/netns/NS unshare -fpmui --propagation private \
#     bash boot.sh IMAGE DISK CGROUP
#
# The VM's root file system is the cached IMAGE (read-only, shared by every VM)
# under the VM's own writable layer DISK/upper (overlayfs, work dir DISK/work,
# mounted on DISK/root): nothing is copied, and what the VM writes stays in
# DISK/upper across reboots, like a disk. CGROUP is a name unique to this VM
# and run: the VM's systemd manages /CGROUP in every cgroup hierarchy and
# nothing else (the harness removes those trees afterwards).
#
# The VM sees the host as a container sees its host, and no more than that:
# - a fresh sysfs (this network namespace's devices), read-only; in
#   /sys/fs/cgroup each hierarchy is read-only but for the VM's own subtree;
# - /proc/sys read-only but for /proc/sys/net (its own network namespace), so
#   systemd-sysctl inside cannot change the host's kernel settings;
# - a private /dev on tmpfs with fresh device nodes (null, zero, full, random,
#   urandom, tty, net/tun 0666 as Debian makes it) and its own devpts; a
#   console that is a null device, never the host's;
# - tmpfs /run and /tmp, as on a booted machine.
#
# `systemctl reboot` inside ends the namespace's init with SIGHUP and
# `systemctl poweroff` with SIGINT (the kernel's reboot(2) in a PID
# namespace); unshare -f passes that on, so the harness tells them apart.
set -euo pipefail
IMAGE=$1
DISK=$2
CG=$3
R=$DISK/root
[ -d "$IMAGE/etc" ] || { echo "boot.sh: $IMAGE is not a root file system" >&2; exit 2; }
[ -d "$DISK/upper" ] && [ -d "$DISK/work" ] && [ -d "$R" ] ||
  { echo "boot.sh: $DISK lacks upper/, work/ or root/" >&2; exit 2; }
[[ $CG =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "boot.sh: bad cgroup name $CG" >&2; exit 2; }

# 1. the VM's own cgroup in every hierarchy (the same path everywhere, which is
#    what systemd expects); this shell (PID 1 here) moves in first
for h in /sys/fs/cgroup/*; do
  [ -L "$h" ] && continue
  [ -f "$h/cgroup.procs" ] || continue
  mkdir -p "$h/$CG"
  # cgroup v1's cpuset takes no task before it has CPUs and memory nodes
  if [ -f "$h/$CG/cpuset.cpus" ] && [ -z "$(cat "$h/$CG/cpuset.cpus")" ]; then
    cat "$h/cpuset.cpus" >"$h/$CG/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h/$CG/cpuset.mems"
  fi
  echo $$ >"$h/$CG/cgroup.procs"
done

# 2. the root file system
mount -t overlay -o "lowerdir=$IMAGE,upperdir=$DISK/upper,workdir=$DISK/work" overlay "$R"

mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
if [ -e "$R/proc/sysrq-trigger" ]; then
  mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
  mount -o remount,bind,ro "$R/proc/sysrq-trigger"
fi

mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o nosuid,nodev,noexec,mode=755 cgroup "$R/sys/fs/cgroup"
for h in /sys/fs/cgroup/*; do
  n=$(basename "$h")
  if [ -L "$h" ]; then
    ln -s "$(readlink "$h")" "$R/sys/fs/cgroup/$n"
    continue
  fi
  [ -f "$h/cgroup.procs" ] || continue # not a hierarchy (litter of an earlier boot)
  mkdir "$R/sys/fs/cgroup/$n"
  mount --bind "$h" "$R/sys/fs/cgroup/$n"
  mount -o remount,bind,ro "$R/sys/fs/cgroup/$n"
  mount --bind "$h/$CG" "$R/sys/fs/cgroup/$n/$CG"
  mount -o remount,bind,rw "$R/sys/fs/cgroup/$n/$CG"
done
# The tmpfs stays writable: it is the VM's own, and systemd creates its
# controller symlinks there (it remounts it read-only itself).

mount -t tmpfs -o nosuid,mode=755,size=16m dev "$R/dev"
mk() { mknod -m "$1" "$R/dev/$2" c "$3" "$4"; }
mk 666 null 1 3
mk 666 zero 1 5
mk 666 full 1 7
mk 666 random 1 8
mk 666 urandom 1 9
mk 666 tty 5 0
mk 600 console 1 3 # a null device: the VM never writes to the host's console
mkdir -m 755 "$R/dev/net"
mk 666 net/tun 10 200
mkdir -m 755 "$R/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mkdir -m 1777 "$R/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"

mount -t tmpfs -o nosuid,nodev,mode=755 run "$R/run"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$R/tmp"

# 3. into it; without the last mount, LoadCredential= directories stay empty
cd "$R"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
mount --make-rshared /
exec env -i container=other PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system
