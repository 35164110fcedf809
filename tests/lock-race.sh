#!/bin/sh
# The create-then-lock race: N times (VMB_RACE_N, default 10000) write a new bundle's
# files (config.json, a 1 MiB sparse disk.img, nvram.bin), close them, and at once take
# the exclusive aux-storage lock without waiting, then release it (close).  No
# attempt may fail.  Phases, each on a fresh mount:
#   1. one process, F_OFD_SETLK          2. one process, flock(LOCK_EX|LOCK_NB)
#   3. two processes at once on different bundles (one OFD, one flock)
#   4. a short run with removal of each bundle right after the release
#   5. in-use checks made by other processes (truncate, vmbundlefs ls) never make a
#      lock attempt fail
# Timing (2 cores): about 8 ms an iteration through the mount; the full run takes
# minutes.  Set VMB_RACE_N lower for a quick run.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
N=${VMB_RACE_N:-10000}
NRM=${VMB_RACE_RM_N:-$((N / 5))}
say "# $N iterations a run (VMB_RACE_N)"

race_check() {   # race_check DESC OUTPUT
    local desc=$1 out=$2 line setup fails rmf secs
    line=$(printf '%s\n' "$out" | grep '^race ' | tail -n 1)
    if [ -z "$line" ]; then
        notok "$desc" "no result from the helper:" "$(printf '%s\n' "$out" | tail -n 5)"
        return
    fi
    set -- $line
    setup=$5 fails=$7 rmf=$9 secs=${11}
    say "# $line"
    assert_eq "$desc: every bundle was created" "0" "$setup" ||
        say "$(printf '%s\n' "$out" | grep -v '^race ' | head -n 5 | sed 's/^/    /')"
    assert_eq "$desc: no lock attempt failed" "0" "$fails" ||
        say "$(printf '%s\n' "$out" | grep 'lock of' | head -n 5 | sed 's/^/    /')"
    [ "$rmf" = 0 ] || notok "$desc: removal right after the release" "$rmf removals failed:" \
        "$(printf '%s\n' "$out" | grep -E 'unlink|rmdir' | head -n 5)"
}

# fresh_mount PHASE: unmount (recording whether the daemon exited cleanly) and mount
# again, so a phase starts with a daemon that knows no inode
fresh_mount() {
    say "# unmount $MNT"
    if _vmb_unmount; then
        ok "the daemon exited cleanly after phase $1"
    else
        notok "the daemon exited cleanly after phase $1" "see the log above"
        mountpoint -q "$MNT" && fusermount3 -uz "$MNT"
        : >"$T/log"   # the next phase's log starts empty
        : >"$T/daemon.out"
    fi
    mount_store
}

mount_store
t0=$(now_s)
race_check "1. one process, OFD, $N iterations" "$(lh race "$MNT" "$N" ofd a 2>&1)"
say "# phase 1 took $(ms_between "$t0" "$(now_s)") ms"

fresh_mount 1
t0=$(now_s)
race_check "2. one process, flock, $N iterations" "$(lh race "$MNT" "$N" flock b 2>&1)"
say "# phase 2 took $(ms_between "$t0" "$(now_s)") ms"

fresh_mount 2
t0=$(now_s)
lh race "$MNT" "$N" ofd c >"$T/race-c.out" 2>&1 &
pc=$!
lh race "$MNT" "$N" flock d >"$T/race-d.out" 2>&1 &
pd=$!
wait $pc
wait $pd
race_check "3. two processes at once, OFD process, $N iterations" "$(cat "$T/race-c.out")"
race_check "3. two processes at once, flock process, $N iterations" "$(cat "$T/race-d.out")"
say "# phase 3 took $(ms_between "$t0" "$(now_s)") ms"

fresh_mount 3
t0=$(now_s)
race_check "4. one process, OFD, remove after release, $NRM iterations" "$(lh race "$MNT" "$NRM" ofd e rm 2>&1)"
race_check "4. one process, flock, remove after release, $NRM iterations" "$(lh race "$MNT" "$NRM" flock f rm 2>&1)"
say "# phase 4 took $(ms_between "$t0" "$(now_s)") ms"

# 5. another process's in-use checks (the daemon tests the aux file of the bundle for
# a truncate, vmbundlefs ls tests every bundle) must not take the lock from a VM
mkdir "$MNT/p" && echo '{}' >"$MNT/p/config.json" && truncate -s 1M "$MNT/p/disk.img" &&
    head -c 4096 /dev/zero >"$MNT/p/nvram.bin" || fail "making bundle p"
for k in flock ofd; do
    # The loop stops at a stop file, not by a signal: a killed loop left its running
    # 'vmbundlefs ls' behind, holding make's output pipe after the test ended.
    rm -f "$T/stop-$k"
    (
        end=$(( $(date +%s) + 4 ))
        while [ "$(date +%s)" -lt $end ] && [ ! -e "$T/stop-$k" ]; do
            truncate -s 1M "$MNT/p/disk.img" 2>/dev/null
            "$VMB_BIN" ls "$STORE" >/dev/null 2>&1
        done
    ) &
    pp=$!
    out=$(lh loop "$MNT/p/nvram.bin" $k 4000 2>&1)
    touch "$T/stop-$k"
    wait $pp 2>/dev/null
    assert_match "5. $k: 4000 lock/unlock rounds while other processes truncate and list the bundle: none fails" \
        "fails 0 " "$out"
done

check "the daemon is alive" daemon_alive
lh_cleanup
finish
