#!/usr/bin/env bash
# Services the end-to-end tests start themselves (each on a free port on 127.0.0.1, stopped by
# PID): only the programs must be installed. Idempotent: installs with apt what is missing
# (redis-server for the Celery tests, iproute2's `ip` for the partition test, which puts a
# worker in a network namespace); does nothing otherwise. Without them those tests skip, with
# the reason.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "== note: ${missing[*]} missing and apt-get is not available: their tests skip" >&2
    exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
command -v redis-server >/dev/null
