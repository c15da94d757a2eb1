#!/usr/bin/env bash
# Docker Compose, whichever this machine has: v2 (`docker compose`) or v1 (`docker-compose`,
# Debian bookworm's 1.29). Arguments go through unchanged:
#
#   compose/compose.sh -f compose/lab.yaml up -d
#
# $KUBELAB_COMPOSE picks one explicitly ("docker compose" or "docker-compose").
# Both versions read the same compose files, but name containers differently (`_` vs `-`):
# address services by their compose service name, never by container name.
set -euo pipefail

if [[ -n ${KUBELAB_COMPOSE:-} ]]; then
  read -r -a compose <<<"$KUBELAB_COMPOSE"
  exec "${compose[@]}" "$@"
elif docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose "$@"
fi
echo "compose.sh: neither Docker Compose v2 ('docker compose') nor v1 ('docker-compose') is" \
  "installed; install one (Debian: apt-get install docker-compose)" >&2
exit 127
