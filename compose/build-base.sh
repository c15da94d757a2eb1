#!/usr/bin/env bash
# Build kubelab's offline base image, for machines that reach no container registry:
# a minimal Debian (debootstrap --variant=minbase) with python3, python3-venv, iproute2,
# util-linux, procps, curl and ca-certificates, fetched from the mirror this machine's apt
# already uses, and `docker import`ed as kubelab-base:<suite>.
#
#   compose/build-base.sh [--rebuild]
#
# The suite and mirror are read from the apt sources (/etc/apt/sources.list, and
# /etc/apt/sources.list.d/*.list or deb822 *.sources): the first enabled `deb` entry whose
# suite debootstrap knows, preferring this machine's own release (VERSION_CODENAME).
# $KUBELAB_BASE_MIRROR and $KUBELAB_BASE_SUITE override them.
#
# An existing kubelab-base:<suite> image is reused unless --rebuild is given. Progress goes
# to stderr; the image's name is the only thing printed on stdout (build-image.sh reads it).
# Needs root for debootstrap (uses sudo when not root); installs debootstrap with apt if it
# is missing.
set -euo pipefail

PACKAGES=python3,python3-venv,iproute2,util-linux,procps,curl,ca-certificates
IMAGE_REPO=kubelab-base
APT_DIR=${KUBELAB_APT_DIR:-/etc/apt}

log() { printf 'build-base: %s\n' "$*" >&2; }
die() {
  printf 'build-base: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

rebuild=0
while (($#)); do
  case $1 in
    --rebuild) rebuild=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || die "debootstrap needs root: run as root, or install sudo"
  sudo=(sudo)
fi

# "URI SUITE" for every enabled binary (`deb`) source, one-line format.
one_line_sources() {
  awk '{ sub(/#.*/, ""); gsub(/\[[^]]*\]/, " ") } $1 == "deb" && NF >= 3 { print $2, $3 }' "$1"
}

# "URI SUITE" for every enabled binary source of a deb822 file (stanzas separated by blank
# lines; a field may continue on indented lines; Enabled: no turns a stanza off).
deb822_sources() {
  awk '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    function flush(   i, j, n, m, u, s) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(trim(enabled)) != "no") {
        n = split(trim(uris), u, /[ \t]+/)
        m = split(trim(suites), s, /[ \t]+/)
        for (i = 1; i <= n; i++)
          for (j = 1; j <= m; j++)
            if (u[i] != "" && s[j] != "") print u[i], s[j]
      }
      types = uris = suites = enabled = field = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ {
      if (field == "uris") uris = uris " " $0
      else if (field == "suites") suites = suites " " $0
      next
    }
    {
      i = index($0, ":")
      if (!i) next
      field = tolower(trim(substr($0, 1, i - 1)))
      value = substr($0, i + 1)
      if (field == "types") types = value
      else if (field == "uris") uris = value
      else if (field == "suites") suites = value
      else if (field == "enabled") enabled = value
    }
    END { flush() }
  ' "$1"
}

apt_sources() {
  local file
  if [[ -f $APT_DIR/sources.list ]]; then one_line_sources "$APT_DIR/sources.list"; fi
  for file in "$APT_DIR"/sources.list.d/*.list; do
    if [[ -f $file ]]; then one_line_sources "$file"; fi
  done
  for file in "$APT_DIR"/sources.list.d/*.sources; do
    if [[ -f $file ]]; then deb822_sources "$file"; fi
  done
}

ensure_debootstrap() {
  if command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]]; then
    return
  fi
  command -v apt-get >/dev/null || die "debootstrap is missing and there is no apt-get to install it"
  log "debootstrap is not installed: installing it with apt-get (needs root)"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends debootstrap >&2
  fi
}

# ---- the suite and mirror
mapfile -t sources < <(apt_sources | awk '$1 ~ /^(https?|ftp):\/\/|^file:\// && !seen[$0]++')
if [[ -n ${KUBELAB_BASE_MIRROR:-} || -n ${KUBELAB_BASE_SUITE:-} ]]; then
  [[ -n ${KUBELAB_BASE_MIRROR:-} && -n ${KUBELAB_BASE_SUITE:-} ]] ||
    die "set both KUBELAB_BASE_MIRROR and KUBELAB_BASE_SUITE, or neither"
  sources=("$KUBELAB_BASE_MIRROR $KUBELAB_BASE_SUITE")
fi
((${#sources[@]})) || die "found no enabled 'deb' source with an http(s), ftp or file URI in" \
  "$APT_DIR/sources.list, $APT_DIR/sources.list.d/*.list or *.sources; set" \
  "KUBELAB_BASE_MIRROR and KUBELAB_BASE_SUITE (e.g. your Debian mirror and 'bookworm')"

ensure_debootstrap
scripts=/usr/share/debootstrap/scripts
codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"' || true)
mirror="" suite=""
for pass in own-release any; do
  for entry in "${sources[@]}"; do
    read -r uri candidate <<<"$entry"
    [[ -e $scripts/$candidate ]] || continue # bookworm-updates, nodistro, ...: no release
    if [[ $pass == any || $candidate == "$codename" ]]; then
      mirror=${uri%/} suite=$candidate
      break 2
    fi
  done
done
[[ -n $suite ]] || die "none of the apt sources names a suite debootstrap knows" \
  "($(printf '%s; ' "${sources[@]}")see $scripts); set KUBELAB_BASE_MIRROR and KUBELAB_BASE_SUITE"
image=$IMAGE_REPO:$suite

if ((!rebuild)) && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image already exists (built $(docker image inspect -f '{{.Created}}' "$image" | cut -c1-19));" \
    "reusing it (--rebuild builds it again)"
  echo "$image"
  exit 0
fi

# ---- debootstrap into a scratch directory (not /tmp: it may be a noexec tmpfs)
workdir=$(mktemp -d "${KUBELAB_BASE_WORKDIR:-/var/tmp}/kubelab-base.XXXXXX")
cleanup() {
  # debootstrap may leave /proc, /sys or /dev mounted inside if it fails: unmount those
  # (deepest first), then delete on this filesystem only, never through a leftover mount.
  local mount
  awk -v root="$workdir/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mount; do "${sudo[@]}" umount -l "$mount" || true; done
  "${sudo[@]}" rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT
rootfs=$workdir/rootfs

log "debootstrapping Debian '$suite' from $mirror (minbase + ${PACKAGES//,/ });" \
  "this takes a minute or two"
if ! "${sudo[@]}" debootstrap --variant=minbase --include="$PACKAGES" \
  "$suite" "$rootfs" "$mirror" >"$workdir/debootstrap.out" 2>&1; then
  tail -n 25 "$workdir/debootstrap.out" >&2
  if [[ -f $rootfs/debootstrap/debootstrap.log ]]; then
    tail -n 25 "$rootfs/debootstrap/debootstrap.log" >&2
  fi
  die "debootstrap of '$suite' from $mirror failed (output above)"
fi

# Trim what a container never reads: package caches and lists, docs (copyrights stay), man
# pages, translations, logs.
# shellcheck disable=SC2016 # $1 is expanded by that inner sh
"${sudo[@]}" sh -c '
  cd "$1"
  rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
    usr/share/man/* usr/share/info/* usr/share/locale/* var/log/* var/cache/debconf/*-old
  find usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
  find usr/share/doc -mindepth 1 -type d -empty -delete
' trim "$rootfs"

log "importing the root filesystem as $image"
"${sudo[@]}" tar --numeric-owner -C "$rootfs" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
  docker import \
    --message "kubelab offline base: debootstrap --variant=minbase $suite" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.kubelab.base.suite=$suite org.kubelab.base.mirror=$mirror" \
    --change 'CMD ["/bin/bash"]' \
    - "$image" >/dev/null
log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
echo "$image"
