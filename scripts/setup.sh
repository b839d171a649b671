#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (as root): system packages, Python packages, libvirtd.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=$(grep -vE '^\s*(#|$)' .ci/apt-packages.txt | tr '\n' ' ')
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON=${PYTHON:-python3}
if ! $PYTHON -c "import okdbench, libvirt, pyVmomi, kubernetes, hypothesis, kubernetes_validate" 2>/dev/null \
   || [ pyproject.toml -nt .cache/pip-installed ]; then
  echo "setup: installing Python packages (pip install -e .[dev])"
  $PYTHON -m pip install -q --disable-pip-version-check -e ".[dev]"
  mkdir -p .cache && touch .cache/pip-installed
fi
