#!/usr/bin/env bash
# Runs a throwaway one-node Slurm cluster on this machine, for tests/sweep_slurm.rs (the
# `bitsearch sweep --slurm` test) and for trying sweeps by hand. Needs root and Debian's
# `slurmctld slurmd slurm-client munge` (scripts/install-ci-deps.sh installs them).
#
#   scripts/slurm-cluster.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf` last
#   scripts/slurm-cluster.sh stop DIR    # safe to repeat, and after a failed start
#
# Everything lives under DIR: slurm.conf, its own munged (key, socket, pid, log, seed), the
# controller's state, slurmd's spool, pid files and logs; nothing under /etc is changed, and a
# system munged does not matter. slurmctld and slurmd listen on the default ports 6817/6818, so
# only one such cluster (and no system Slurm) can run at a time. `start` begins with an empty job
# state each time (job ids restart at 1). Its stdout is the export line alone, for
# `eval "$(scripts/slurm-cluster.sh start DIR)"`; the rest goes to stderr.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
# The file that marks DIR as this script's: `start` removes and rewrites state, spool, run and
# log under DIR as root, so it does so only in an empty (or new) directory or one it marked.
MARK=.bitsearch-slurm-cluster
case "$1" in start) mkdir -p "$2" ;; stop) [ -d "$2" ] || exit 0 ;; *) usage ;; esac
DIR=$(cd "$2" && pwd)   # absolute: slurm.conf's paths must not depend on anyone's cwd
if [ ! -f "$DIR/$MARK" ]; then
    if [ "$1" = stop ]; then
        echo "$DIR was not made by $0 start (no $MARK): nothing to stop" >&2
        exit 1
    fi
    if [ "$DIR" = / ] || [ -n "$(ls -A "$DIR")" ]; then
        echo "$DIR is not empty and was not made by $0 start (no $MARK): choose a new" \
            "or empty directory" >&2
        exit 1
    fi
    echo "a one-node Slurm cluster of scripts/slurm-cluster.sh; start and stop remove what is" \
        "under state, spool, run and log here" > "$DIR/$MARK"
fi
CONF=$DIR/slurm.conf
SOCKET=$DIR/munge/munge.socket
export SLURM_CONF=$CONF
DAEMONS="slurmd slurmctld munged"   # in stopping order: munged last, the others talk through it

# The pid in DIR/run/NAME.pid if that process is alive and is NAME (a pid may have been reused).
live_pid() {
    local pid
    pid=$(cat "$DIR/run/$1.pid" 2> /dev/null) || return 1
    alive "$pid" && [ "$(ps -o comm= -p "$pid" 2> /dev/null)" = "$1" ] && echo "$pid"
}
# Whether one of PIDS runs; a zombie does not (a daemon's parent, pid 1, may be slow to reap it).
alive() { ps -o stat= -p "$(echo "$*" | tr ' ' ,)" 2> /dev/null | grep -qv '^Z'; }

# Job steps: slurmstepd detaches from slurmd and has no pid file; ours keep our slurmd.log open.
our_stepds() {
    local pid
    for pid in $(pgrep -x slurmstepd); do
        if ls -l "/proc/$pid/fd" 2> /dev/null | grep -q -- "-> $DIR/log/slurmd.log\$"; then
            echo "$pid"
        fi
    done
}

# Kills PIDS with SIGNAL, then waits up to SECONDS for them to be gone; fails if some are left.
kill_wait() {
    local signal=$1 seconds=$2; shift 2
    kill "-$signal" "$@" 2> /dev/null || true
    for _ in $(seq $((seconds * 5))); do
        alive "$@" || return 0
        sleep 0.2
    done
    return 1
}

stop() {
    local stepds name pid
    # Cancel the jobs while the controller is up: then each slurmstepd ends its own tasks.
    if live_pid slurmctld > /dev/null && [ -n "$(our_stepds)" ]; then
        timeout 10 scancel --quiet --user="$(id -un)" 2> /dev/null || true
        for _ in $(seq 50); do [ -z "$(our_stepds)" ] && break; sleep 0.2; done
    fi
    # Kill what is left of the job steps with their jobs' processes: each slurmstepd leads a session
    # that its job's processes share (unless they setsid); proctrack/linuxproc keeps no other trace.
    stepds=$(our_stepds | paste -sd,)
    if [ -n "$stepds" ]; then
        # shellcheck disable=SC2046 # one pid a word
        kill_wait KILL 10 $(pgrep -s "$(ps -o sid= -p "$stepds" | tr -d ' ' | paste -sd,)") \
            || echo "warning: some job processes survived" >&2
    fi
    for name in $DAEMONS; do
        pid=$(live_pid "$name") || continue
        kill_wait TERM 15 "$pid" || kill_wait KILL 5 "$pid" \
            || { echo "$name ($pid) survived" >&2; return 1; }
    done
    rm -f "$DIR"/run/*.pid
}

# From the first daemon on, a failed start shows the logs and stops what it started.
start_failed() {
    echo "start failed; the logs end:" >&2
    tail -n 25 "$DIR"/log/*.log >&2 || true
    stop || true
}

start() {
    local name
    for name in $DAEMONS; do
        if live_pid "$name" > /dev/null; then echo "$name runs in $DIR: stop first" >&2; exit 1; fi
    done
    [ "$(id -u)" -eq 0 ] || { echo "needs root: slurmd runs the jobs as root" >&2; exit 1; }
    trap start_failed EXIT
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/munge"
    # munged wants key, socket and seed directories that no one else can write to (whatever umask).
    chmod 0755 "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 0400 "$DIR/munge/munge.key"
    fi
    # --force: munged also checks every parent of its files and refuses a group- or world-writable
    # one without the sticky bit (DIR=/tmp/x is fine, a DIR under a chmod 777 directory is not).
    munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    munge -S "$SOCKET" -n | unmunge -S "$SOCKET" > /dev/null

    local host mem_mib deadline
    host=$(hostname -s)
    mem_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) - 1024 }' /proc/meminfo)
    cat > "$CONF" << EOF
# Written by scripts/slurm-cluster.sh: a one-node cluster living in $DIR.
ClusterName=bitsearch
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire (120 s by default) is also how long a requeued job waits before it may run again.
AuthInfo=socket=$SOCKET,cred_expire=30
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MpiDefault=none
# Jobs eligible by time (requeued, --begin) wait for a periodic pass: every 60 s/30 s by default.
SchedulerParameters=sched_interval=5,bf_interval=5
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem_mib State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    deadline=$((SECONDS + 60))
    until [ "$(timeout 10 sinfo -h -N -o '%T' 2> /dev/null)" = idle ]; do
        # A daemon that died (say, another cluster holds its port) will not come back: fail now.
        for name in slurmctld slurmd; do
            if [ -s "$DIR/run/$name.pid" ] && ! live_pid "$name" > /dev/null; then
                echo "$name died" >&2; exit 1
            fi
        done
        if [ "$SECONDS" -ge "$deadline" ]; then echo "node not idle after 60 s" >&2; exit 1; fi
        sleep 0.5
    done
    trap - EXIT
    sinfo -N >&2
    echo "export SLURM_CONF=$CONF"
}

"$1"
