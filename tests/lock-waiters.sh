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

# A stop while lock calls wait: the daemon ends them (each waits in a thread of its
# own), exits 0 and leaves nothing behind (LeakSanitizer and ASan in the sanitizer
# build: a waiting thread must not outlive what it uses), and no waiting process
# stays stuck in the file system.
lh_bg H2 "$F" 'flock ex' 'hold'
wait_out H2 '^holding' || fail "the second holder did not start"
for i in 1 2 3 4 5 6 7 8; do
    lh_bg "S$i" "$F" 'flock sh wait' 'flock un'
done
sleep 0.5
kill -TERM "$(daemon_pid)"
_vmb_wait_daemon 15 || fail "the daemon did not exit within 15 s of SIGTERM with 8 lock calls waiting"
_vmb_set_state stopped
assert_eq "SIGTERM while 8 lock calls wait: the daemon exits 0" 0 "$(cat "$T/daemon.rc")"
check "... and its log holds no sanitizer report" log_clean
left=
for _ in $(seq 1 50); do
    left=
    for i in 1 2 3 4 5 6 7 8; do
        st=$(sed 's/.*) //' "/proc/$(pid_of "S$i")/stat" 2>/dev/null | cut -c1)
        [ -n "$st" ] && [ "$st" != Z ] && left="$left S$i"
    done
    [ -z "$left" ] && break
    sleep 0.1
done
assert_eq "... and every waiting process has returned within 5 s" "" "$left"
grep -q " $MNT fuse" /proc/mounts && fusermount3 -uz "$MNT"
lh_cleanup
finish
