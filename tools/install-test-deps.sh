#!/usr/bin/env bash
# Install everything the tests need: the package with its test extras, and Debian's qemu-utils
# (qemu-img is an independent oracle for the disk tests).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-img >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null
  else
    echo "qemu-img not found: install Debian's qemu-utils for the oracle tests" >&2
  fi
fi
python3 -m pip install -q -e '.[test]'
