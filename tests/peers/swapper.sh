#!/bin/sh
# The attacker of the provision race test: run as the service user inside its
# state directory, it keeps swapping paths of its own tree for symlinks to
# root's files until STOPFILE exists. Each round it also makes drift provision
# will want to repair (a directory made 0777, a file replaced by one of its
# own), so root's chown/chmod is always about to happen somewhere.
#
# usage: swapper.sh STOPFILE TARGET_DIR VICTIM...
#   VICTIM is a path relative to the working directory; it is swapped for a
#   symlink to TARGET_DIR/VICTIM (a root-owned mirror of the tree) or, for a
#   file, to TARGET_DIR/etc-group (the stand-in for /etc/group).
stop=$1
target=$2
shift 2
for v in "$@"; do
  if [ -d "$v" ]; then ln -sfn "$target/$v" "$v.lnk"; else ln -sfn "$target/etc-group" "$v.lnk"; fi
done
rounds=0
while [ ! -e "$stop" ]; do
  for v in "$@"; do
    # recover from a round cut short by a frozen directory (EACCES)
    if [ -L "$v" ]; then mv -T "$v" "$v.lnk" 2>/dev/null; fi
    if [ ! -e "$v" ] && [ -e "$v.away" ]; then mv -T "$v.away" "$v" 2>/dev/null; fi
    if [ -d "$v" ]; then
      chmod 0777 "$v" 2>/dev/null
    elif [ -f "$v" ]; then
      : >"$v.drift" 2>/dev/null && mv -f "$v.drift" "$v" 2>/dev/null
    fi
    mv -T "$v" "$v.away" 2>/dev/null || continue
    mv -T "$v.lnk" "$v" 2>/dev/null
    mv -T "$v" "$v.lnk" 2>/dev/null
    mv -T "$v.away" "$v" 2>/dev/null
  done
  rounds=$((rounds + 1))
done
echo "$rounds"
