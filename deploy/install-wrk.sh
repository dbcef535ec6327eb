#!/bin/sh
# wrk, the HTTP load generator that `refold bench serve` drives, from Debian's packages.
# Does nothing when wrk is already on PATH. Needs root or sudo (apt-get).
set -eu
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk
