#!/usr/bin/env bash
# Installs what kplane's tests need on Debian, idempotently: a package that
# is already installed is not touched, and apt-get update runs at most once.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [chromium]=chromium
  [mariadbd]=mariadb-server
  [prometheus]=prometheus
  [etcd]=etcd-server
)

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${missing[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

echo "install-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
