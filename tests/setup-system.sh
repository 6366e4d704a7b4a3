#!/usr/bin/env bash
# System packages the test suite uses, from Debian's archive. Run once per machine, as root:
#     sudo bash tests/setup-system.sh
# .ci/run runs it before the README's install and test commands. Tests never install anything.
# One package list per need; add yours here, never inside a test.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    chromium        # tests/test_inventory.py: the HTML report in a real headless browser
    openjdk-17-jdk-headless  # tests/test_pin_rules.py: javac runs the OkHttp Java snippet
    # tests/test_starttls_servers.py: real servers behind each STARTTLS dialogue. The tests
    # start their own instances on high loopback ports with config and data in a temporary
    # folder; the system-wide instances are kept from starting (policy-rc.d below).
    dovecot-imapd   # IMAP (STARTTLS) and, with dovecot-pop3d, POP3 (STLS)
    dovecot-pop3d
    slapd           # OpenLDAP: the StartTLS extended operation
    postgresql      # SSLRequest
    mariadb-server  # MySQL protocol: CLIENT_SSL in the handshake response
    prosody         # XMPP client-to-server and server-to-server <starttls/>
    xrdp            # RDP: X.224 connection request, RDP negotiation with PROTOCOL_SSL
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
    # Installing a daemon must not start its system-wide instance (it would hold the standard
    # port and run as a service): policy-rc.d answers "not allowed" to every start request.
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
