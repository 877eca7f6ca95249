#!/usr/bin/env bash
# Start a Docker engine for tests and CI when none answers.
# Why: CI machines and this dev box have docker.io installed but no running daemon and no
# bridge network; containers run with host networking bound to 127.0.0.1 only.
# Idempotent: returns at once when `docker info` already works. Waits at most
# FINISHLINE_DOCKERD_WAIT seconds (default 60) for the engine to answer.
set -euo pipefail

LOG="${FINISHLINE_DOCKERD_LOG:-/var/log/finishline-dockerd.log}"
WAIT="${FINISHLINE_DOCKERD_WAIT:-60}"

if docker info >/dev/null 2>&1; then
    echo "dockerd already running"
    exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd not installed: apt-get install docker.io" >&2; exit 1; }

mkdir -p "$(dirname "$LOG")"
# setsid: the daemon must outlive the shell (and CI step) that started it.
setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 < /dev/null &
for ((i = 0; i < WAIT * 2; i++)); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd ready after $((i / 2)) s (log: $LOG)"
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not answer within ${WAIT} s; see $LOG" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
