#!/bin/sh
# Many processes waiting for one lock through the mount (CI jobs serialising on
# `flock file`, several VMs waiting for one image): more waiters than the daemon
# has worker threads (-o max_threads, default 64) must not stall the mount, and
# all of them must get the lock once the holder lets go.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
mkdir "$MNT/vm" || fail "mkdir"
F=$MNT/vm/job.lock
: >"$F"
echo other >"$MNT/vm/other"
NW=${VMB_LOCK_WAITERS:-70}

lh_bg H "$F" 'flock ex' 'hold'
wait_out H '^holding' || fail "the holder did not start"
for i in $(seq 1 "$NW"); do
    lh_bg "W$i" "$F" 'flock sh wait' 'flock un'
done
sleep 1
got=$(cat "$T"/W*.out | grep -c '^locked')
assert_eq "no waiter has the lock while it is held" 0 "$got"
check "the mount answers while $NW processes wait for a lock (open+read of another file)" \
    timeout 5 cat "$MNT/vm/other"
check "a non-blocking lock on another file is answered meanwhile" timeout 5 "$LH" "$MNT/vm/other" 'flock ex'
t0=$(now_s)
lh_kill H
n=0
while [ $n -lt 150 ]; do
    got=$(cat "$T"/W*.out | grep -c '^locked')
    [ "$got" -ge "$NW" ] && break
    sleep 0.1
    n=$((n + 1))
done
assert_eq "every one of the $NW waiters gets the shared lock after the holder's SIGKILL (within 15 s)" "$NW" "$got"
if [ "$got" -lt "$NW" ]; then
    say "# the mount is stuck ($got of $NW waiters served); killing the daemon to recover"
    kill_daemon
    lh_cleanup
    finish
fi
say "# all $NW waiters served in $(ms_between "$t0" "$(now_s)") ms"
check "the daemon is alive" daemon_alive
lh_cleanup
finish
