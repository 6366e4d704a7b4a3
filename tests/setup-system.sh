#!/usr/bin/env bash
# System packages the test suite uses, from Debian's archive. Run once per machine, as root:
#     sudo bash tests/setup-system.sh
# .ci/run runs it before the README's install and test commands. Tests never install anything.
# One package list per need; add yours here, never inside a test.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    chromium        # tests/test_inventory.py: the HTML report in a real headless browser
)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/setup-system.sh: needs root to install: ${missing[*]} (run it with sudo)" >&2
        exit 1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
