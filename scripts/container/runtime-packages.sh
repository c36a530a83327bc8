#!/usr/bin/env bash
# Prints the runtime apt packages of one image variant (cpu or cuda), one a line, from
# runtime-packages.txt next to this script. With --install, installs them instead
# (apt-get, no recommends; for the Dockerfile's runtime stage, as root).
#
#   runtime-packages.sh [--install] cpu|cuda
set -euo pipefail
install=0
if [ "${1:-}" = "--install" ]; then install=1; shift; fi
variant=${1:-cpu}
case "$variant" in cpu|cuda) ;; *) echo "runtime-packages: variant must be cpu or cuda, not '$variant'" >&2; exit 2;; esac
list="$(dirname "$0")/runtime-packages.txt"

packages=()
while read -r name tag rest; do
  case "$name" in ''|'#'*) continue;; esac
  if [ -n "$tag" ] && [ "$tag" != "[$variant]" ]; then
    case "$tag" in '[cpu]'|'[cuda]') continue;; *) echo "runtime-packages: bad line in $list: $name $tag $rest" >&2; exit 1;; esac
  fi
  packages+=("$name")
done < "$list"

if [ "$install" -eq 0 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
apt-get clean
rm -rf /var/lib/apt/lists/*
