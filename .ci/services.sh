#!/usr/bin/env bash
# Services the end-to-end tests start themselves (each on a free port on 127.0.0.1, stopped by
# PID): only the programs must be installed. Idempotent: installs redis-server with apt when it
# is missing; does nothing otherwise. The Celery cluster tests skip, with this reason, without it.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "== note: redis-server is missing and apt-get is not available: the Celery tests skip" >&2
    exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null
