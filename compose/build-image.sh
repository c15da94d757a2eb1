#!/usr/bin/env bash
# Build the kubelab image (kubelab:latest and kubelab:<git short sha>) from compose/Dockerfile,
# with no container registry needed.
#
#   compose/build-image.sh [--offline] [--rebuild-base] [--refresh-wheels]
#
#   1. base: $KUBELAB_BASE if set (it must exist locally or be pullable), else
#      python:3.12-slim if it is here or can be pulled (within $KUBELAB_PULL_TIMEOUT s,
#      default 20), else (or with --offline) kubelab-base:<suite>, a minimal Debian that
#      compose/build-base.sh debootstraps from this machine's apt mirror (built once, then
#      reused; --rebuild-base builds it again).
#   2. asks the base image for its Python version, machine and glibc;
#   3. wheels for that Python and platform, into compose/.wheels/: kubelab's own (pip wheel,
#      on the host) and the runtime dependencies from pyproject.toml (pip download of
#      binary wheels; built on the host instead when the host's Python and machine match).
#      Dependencies are fetched again only when they or the base change (--refresh-wheels:
#      always);
#   4. docker build, with the layers that rarely change (OS tools, dependencies) first.
#
# Host needs: docker, bash, and a Python >= 3.11 with pip ($KUBELAB_PYTHON, else the repo's
# .venv, else python3). $KUBELAB_IMAGE names the image (default: kubelab).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
wheels=$here/.wheels
image=${KUBELAB_IMAGE:-kubelab}
default_base=python:3.12-slim
pull_timeout=${KUBELAB_PULL_TIMEOUT:-20}
# Fixed zip timestamps (1980-01-01) make the kubelab wheel byte-identical when its sources
# are, so Docker's layer cache holds across runs.
export SOURCE_DATE_EPOCH=315532800

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'build-image: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

offline=0 rebuild_base=0 refresh_wheels=0
while (($#)); do
  case $1 in
    --offline) offline=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --refresh-wheels) refresh_wheels=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

started=$EPOCHREALTIME
stage_started=$started
stage() {
  stage_name=$1
  stage_started=$EPOCHREALTIME
  log "$stage_name"
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }
stage_done() { log "$stage_name: done in $(elapsed "$stage_started")"; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? may you use it?)"

# ---------------------------------------------------------------- 1. base image
stage "1/4 base image"
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
try_pull() {
  log "pulling $1 (giving up after ${pull_timeout}s)"
  timeout "$pull_timeout" docker pull --quiet "$1" >/dev/null 2>"$scratch/pull.err" && return 0
  log "could not pull $1: $(tail -n 1 "$scratch/pull.err" || true)"
  return 1
}
base_args=()
if ((rebuild_base)); then base_args+=(--rebuild); fi
if ((offline)); then
  log "--offline: using the debootstrapped base"
  base=$("$here/build-base.sh" "${base_args[@]}")
elif [[ -n ${KUBELAB_BASE:-} ]]; then
  base=$KUBELAB_BASE
  have_image "$base" || try_pull "$base" ||
    die "KUBELAB_BASE=$base is neither a local image nor pullable (unset it to fall back" \
      "to the offline base)"
elif have_image "$default_base" || try_pull "$default_base"; then
  base=$default_base
else
  log "$default_base is not available (no registry?): using the offline base instead"
  base=$("$here/build-base.sh" "${base_args[@]}")
fi
log "base: $base"
stage_done

# ---------------------------------------------------------------- 2. the base's Python
stage "2/4 the base image's Python"
# shellcheck disable=SC2016 # Python code, not shell
probe='
import os, platform, sys
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or "none 0"
except (ValueError, OSError):
    libc = "none 0"
print("%d.%d" % sys.version_info[:2], platform.machine(), libc)
'
target=$(docker run --rm --network none --entrypoint python3 "$base" -c "$probe") ||
  die "could not run python3 in $base: the base image needs python3 (>= 3.11) and its venv module"
read -r py_version machine libc libc_version <<<"$target"
[[ $libc == glibc ]] || die "$base has no glibc ($libc): use a Debian-like base"
((${py_version#*.} >= 11)) || die "$base has Python $py_version; kubelab needs 3.11 or newer"
log "Python $py_version on $machine, glibc $libc_version"
stage_done

# ---------------------------------------------------------------- 3. wheels
stage "3/4 wheels for Python $py_version / $machine into compose/.wheels/"
host_python=${KUBELAB_PYTHON:-}
if [[ -z $host_python ]]; then
  if [[ -x $repo/.venv/bin/python ]]; then host_python=$repo/.venv/bin/python; else host_python=python3; fi
fi
command -v "$host_python" >/dev/null || die "no host Python ($host_python)"
"$host_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$host_python is older than 3.11 (it reads pyproject.toml with tomllib)"
"$host_python" -m pip --version >/dev/null 2>&1 ||
  die "$host_python has no pip: run 'make up' once (creates .venv) or install python3-pip," \
    "or point KUBELAB_PYTHON at a Python with pip"
pip=("$host_python" -m pip --disable-pip-version-check)
host_target=$("$host_python" -c 'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine())')

# The runtime dependencies, as pyproject.toml states them.
"$host_python" - "$repo/pyproject.toml" >"$scratch/requirements.txt" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    print("\n".join(tomllib.load(file)["project"]["dependencies"]))
PY
stamp=$(printf 'python %s %s %s %s\n' "$py_version" "$machine" "$libc" "$libc_version"
  cat "$scratch/requirements.txt")
if ((!refresh_wheels)) && [[ -f $wheels/deps/.stamp && "$(cat "$wheels/deps/.stamp")" == "$stamp" ]]; then
  log "dependency wheels are up to date ($(find "$wheels/deps" -name '*.whl' | wc -l) wheels)"
else
  # manylinux_2_<m> for every glibc 2.m the base has, plus the legacy aliases.
  platforms=()
  for ((m = ${libc_version#*.}; m >= 5; m--)); do platforms+=(--platform "manylinux_2_${m}_$machine"); done
  platforms+=(--platform "manylinux2014_$machine" --platform "manylinux2010_$machine"
    --platform "manylinux1_$machine")
  mkdir -p "$scratch/deps"
  cp "$scratch/requirements.txt" "$scratch/deps/requirements.txt"
  log "downloading binary wheels of the dependencies for CPython $py_version"
  if ! "${pip[@]}" download --quiet --only-binary=:all: --implementation cp \
    --python-version "$py_version" "${platforms[@]}" --dest "$scratch/deps" \
    -r "$scratch/requirements.txt"; then
    [[ $host_target == "$py_version $machine" ]] ||
      die "some dependency has no binary wheel for CPython $py_version on $machine (see" \
        "above), and the host ($host_target) cannot build one for it"
    log "building the dependencies' wheels on the host instead (same Python and machine)"
    "${pip[@]}" wheel --quiet --wheel-dir "$scratch/deps" -r "$scratch/requirements.txt"
  fi
  printf '%s\n' "$stamp" >"$scratch/deps/.stamp"
  rm -rf "$wheels/deps"
  mkdir -p "$wheels"
  mv "$scratch/deps" "$wheels/deps"
  log "$(find "$wheels/deps" -name '*.whl' | wc -l) dependency wheels, $(du -sh "$wheels/deps" | cut -f1)"
fi

# kubelab itself, built from a copy of its sources so the build leaves nothing in the repo.
mkdir -p "$scratch/src" "$scratch/kubelab"
(
  cd "$repo"
  shopt -s nullglob
  tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md LICEN[CS]E* \
    kubelab services node_agent workloads
) | tar -C "$scratch/src" -xf -
isolation=(--no-build-isolation)
"$host_python" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' \
  2>/dev/null || isolation=() # pip fetches setuptools>=77 into an isolated build env
"${pip[@]}" wheel --quiet --no-deps "${isolation[@]}" --wheel-dir "$scratch/kubelab" "$scratch/src" \
  >"$scratch/wheel.log" 2>&1 || {
  cat "$scratch/wheel.log" >&2
  die "building kubelab's wheel failed"
}
built=$(find "$scratch/kubelab" -name 'kubelab-*.whl')
current=$(find "$wheels/kubelab" -name 'kubelab-*.whl' 2>/dev/null || true)
if [[ -n $current && $(basename "$current") == $(basename "$built") ]] && cmp -s "$built" "$current"; then
  log "kubelab wheel unchanged: $(basename "$built")"
else
  rm -rf "$wheels/kubelab"
  mkdir -p "$wheels/kubelab"
  mv "$built" "$wheels/kubelab/"
  log "kubelab wheel: $(basename "$built")"
fi
stage_done

# ---------------------------------------------------------------- 4. docker build
revision=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || true)
tags=(--tag "$image:latest")
if [[ -n $revision ]]; then tags+=(--tag "$image:$revision"); fi
stage "4/4 docker build $image:latest${revision:+ and $image:$revision} (base $base)"
docker build --force-rm --file "$here/Dockerfile" --build-arg "BASE=$base" \
  --build-arg "REVISION=${revision:-unknown}" "${tags[@]}" "$here" ||
  die "docker build failed (output above)"
# The image this build replaced lost its tags: remove it (and any earlier one) rather than
# leave a few hundred MB dangling per build. Only untagged kubelab images are touched.
docker image prune --force --filter "label=org.opencontainers.image.title=kubelab" >/dev/null ||
  log "could not prune the replaced kubelab images (docker image prune failed)"
# Earlier builds' revision tags ($image:<git sha>) would keep one image per commit built: only
# the one just built keeps its revision tag. Other tags (a user's own) are left alone.
if [[ -n $revision ]]; then
  stale=$(docker image ls --filter "label=org.opencontainers.image.title=kubelab" \
    --format '{{.Repository}}:{{.Tag}}' "$image" |
    { grep -E "^$image:[0-9a-f]{7,40}\$" || true; } | { grep -vxF "$image:$revision" || true; })
  if [[ -n $stale ]]; then
    # shellcheck disable=SC2086 # one tag per word
    docker image rm $stale >/dev/null 2>&1 || log "could not remove earlier revision tags: $stale"
  fi
fi
stage_done

size=$(docker image inspect -f '{{.Size}}' "$image:latest" | awk '{ printf "%.0f MB", $1 / 1e6 }')
log "built $image:latest${revision:+ = $image:$revision} ($size, base $base) in $(elapsed "$started")"
log "try: docker run --rm $image:latest kubelab --help"
