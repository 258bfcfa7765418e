#!/bin/sh
# Restart one instance of a rolling deploy: the command `goldenpath load --restart-cmd` runs.
#
#   scripts/rolling-restart.sh PIDFILE [START-COMMAND...]
#
# Sends SIGTERM to the process whose pid PIDFILE holds, waits (at most
# GOLDENPATH_RESTART_WAIT seconds, default 30) until it has exited, then, when a START-COMMAND
# is given, starts it in the background and writes its pid to PIDFILE. With instances sharing
# one address (`goldenpath serve --reuse-port`), the others serve while this one drains and
# restarts. Exit 0 when the instance stopped (and the new one started); 1 when it did not stop
# in time; 2 on bad usage.
#
# Worked example (MIGRATING.md, "Rolling restart"):
#   goldenpath load --url ws://127.0.0.1:8080/ws --jwt-secret "$SECRET" \
#     --restart-cmd "scripts/rolling-restart.sh /run/a.pid goldenpath serve --listen 127.0.0.1:8080 --reuse-port"
set -eu

if [ $# -lt 1 ] || [ ! -r "$1" ]; then
    echo "usage: $0 PIDFILE [START-COMMAND...]: PIDFILE must name a readable file" >&2
    exit 2
fi
pidfile=$1
shift
pid=$(cat "$pidfile")
case $pid in
    '' | *[!0-9]*)
        echo "$0: $pidfile holds no pid: '$pid'" >&2
        exit 2
        ;;
esac

kill -TERM "$pid"
limit=$(( ${GOLDENPATH_RESTART_WAIT:-30} * 20 ))
ticks=0
# Gone, or a zombie its parent has not reaped yet: either way it serves no more.
while kill -0 "$pid" 2>/dev/null; do
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    [ "$state" = Z ] && break
    ticks=$((ticks + 1))
    if [ "$ticks" -ge "$limit" ]; then
        echo "$0: pid $pid still running ${GOLDENPATH_RESTART_WAIT:-30} s after SIGTERM" >&2
        exit 1
    fi
    sleep 0.05
done
echo "$0: pid $pid stopped" >&2

if [ $# -gt 0 ]; then
    "$@" </dev/null >/dev/null 2>&1 &
    echo $! >"$pidfile"
    echo "$0: started pid $! in its place" >&2
fi
