#!/usr/bin/env bash
# Runs this repository's CI on a fresh Debian machine: a minimal chroot built by debootstrap with
# only what a fresh machine of this project has (make, g++, python3, git, and this host's node and
# npm), a fresh clone of the repository in it, then `CI=true bash .ci/run` as root there, which must
# install everything else itself. `--user` runs `npm test` as a user instead (root's tests skip).
#
#   sudo scripts/fresh-machine.sh [--user] [--keep] [DIR]
#
# DIR (default: a new directory under /var/tmp) is made for the run and removed after it, unless
# --keep. Needs root, debootstrap (installed when missing) and the Debian mirror of
# /etc/apt/sources.list*. The chroot's network namespaces live in its own /run: it never sees or
# touches the host's. This host's TLS trust (/usr/local/share/ca-certificates), npm settings and
# Node's headers are copied in, so that npm and node-gyp reach what they reach here.
set -euo pipefail

user=0 keep=0 dir=''
for a in "$@"; do
  case "$a" in
    --user) user=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fresh-machine: unknown option $a" >&2; exit 2 ;;
    *) dir=$a ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo 'fresh-machine: needs root (debootstrap, chroot, mounts)' >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$dir" ]; then dir=$(mktemp -d /var/tmp/shim6-fresh-XXXXXX); else mkdir -p "$dir"; fi
[ -z "$(ls -A "$dir")" ] || { echo "fresh-machine: $dir is not empty" >&2; exit 2; }
chmod 755 "$dir" # the chroot's / (mktemp makes it 0700: a user could not even run a shell there)

cleanup() {
  rm -f "$dir.debootstrap.log"
  umount -R "$dir" 2>/dev/null || true
  # Never remove while anything is still mounted below it (/dev and /sys are the host's own).
  if [ -n "$(findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1')" ]; then
    echo "fresh-machine: $dir still has mounts (findmnt); not removed" >&2
  elif [ "$keep" = 0 ]; then rm -rf --one-file-system "$dir"
  else echo "fresh-machine: kept $dir" >&2; fi
}
trap cleanup EXIT

command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$({ grep -rhoE 'https?://[^ ]*debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } | head -1 | tr -d ' ')
echo "fresh-machine: debootstrap $suite from ${mirror:-the default mirror} into $dir" >&2
debootstrap --variant=minbase --include=make,g++,python3,git,ca-certificates,iproute2,procps "$suite" "$dir" ${mirror:+"$mirror"} >"$dir.debootstrap.log" 2>&1 ||
  { tail -20 "$dir.debootstrap.log" >&2; exit 1; }

# This host's node, npm, Node's headers and npm settings (node is what a fresh machine has).
node=$(readlink -f "$(command -v node)")
npm_root=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
prefix=$(dirname "$(dirname "$node")")
install -D "$node" "$dir/usr/bin/node"
mkdir -p "$dir/usr/lib/node_modules" && cp -a "$npm_root" "$dir/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/bin/npx"
if [ -d "$prefix/include/node" ]; then mkdir -p "$dir/usr/include" && cp -a "$prefix/include/node" "$dir/usr/include/"; fi
global_npmrc=$(npm config get globalconfig 2>/dev/null || true)
if [ -f "$global_npmrc" ]; then install -D "$global_npmrc" "$dir/usr/etc/npmrc"; fi
if [ -f /root/.npmrc ]; then cp /root/.npmrc "$dir/root/.npmrc"; fi
cp -a /usr/local/share/ca-certificates/. "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$dir" update-ca-certificates >/dev/null 2>&1
cp /etc/resolv.conf "$dir/etc/resolv.conf"

# `ip netns exec` remounts / as a slave: the chroot's / must be a mount point.
mount --bind "$dir" "$dir" && mount --make-private "$dir"
mount -t proc proc "$dir/proc"
mount --rbind /sys "$dir/sys" && mount --make-rslave "$dir/sys"
mount --rbind /dev "$dir/dev" && mount --make-rslave "$dir/dev"
mount -t tmpfs tmpfs "$dir/run"

env_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
started=$(date +%s)
if [ "$user" = 0 ]; then
  git clone -q "$repo" "$dir/root/ci"
  echo "fresh-machine: CI=true bash .ci/run as root in /root/ci ($(git -C "$repo" log --oneline -1))" >&2
  set +e
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=$env_path LANG=C.UTF-8 CI=true bash -c 'cd /root/ci && bash .ci/run'
  rc=$?
else
  # The Debian packages first, as CI installs them: a user cannot.
  git clone -q "$repo" "$dir/root/ci"
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=$env_path LANG=C.UTF-8 bash -c 'cd /root/ci && node scripts/ensure.mjs' >&2
  chroot "$dir" useradd -m -s /bin/bash dev
  if [ -f /root/.npmrc ]; then cp /root/.npmrc "$dir/home/dev/.npmrc" && chroot "$dir" chown dev:dev /home/dev/.npmrc; fi
  git clone -q "$repo" "$dir/home/dev/ci" && chroot "$dir" chown -R dev:dev /home/dev/ci
  echo "fresh-machine: npm test as user dev in /home/dev/ci ($(git -C "$repo" log --oneline -1))" >&2
  set +e
  chroot "$dir" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 su - dev -c 'cd ci && npm test'
  rc=$?
fi
echo "fresh-machine: exit $rc after $(( $(date +%s) - started )) s" >&2
exit $rc
