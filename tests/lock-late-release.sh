#!/bin/sh
# The kernel sends RELEASE for a closed file after close(2) has returned, and the
# owner id of an OFD or flock lock is the address of the open file, which the next
# open may get at once. With every RELEASE held back by the daemon
# (VMB_TEST_RELEASE_DELAY_MS), a process that locks right after another closed:
#   - gets the lock (the daemon waits for the late RELEASE, never EAGAIN),
#   - keeps it when that late RELEASE arrives (it must not drop a lock taken by
#     the new file under the recycled owner id), and
#   - a third process sees it held.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
export VMB_TEST_RELEASE_DELAY_MS=250
mount_store
unset VMB_TEST_RELEASE_DELAY_MS
mkdir "$MNT/vm" || fail "mkdir"
F=$MNT/vm/nvram.bin
head -c 8192 /dev/urandom >"$F" || fail "cannot write $F"
sleep 0.5   # the RELEASE of that write's handle

ROUNDS=${VMB_LATE_RELEASE_ROUNDS:-8}
for kind in ofd flock; do
    case $kind in
    ofd) take='ofd w 0 10' probe='ofdgetlk w 0 10' free=free ;;
    flock) take='flock ex' probe='flock ex' free=locked ;;
    esac
    lost=0 refused=0 first=
    for i in $(seq "$ROUNDS"); do
        lhr "$F" "$take" close >/dev/null      # A: lock, close, exit
        lh_bg B "$F" "$take" 'hold 5'          # B at once
        wait_out B '^holding' 5 || { refused=$((refused + 1)); first=${first:-"B: $(out_of B | tr '\n' ' ')"}; lh_kill B; continue; }
        [ "$(out_of B | head -n 1)" = locked ] || { refused=$((refused + 1)); first=${first:-"B: $(out_of B | tr '\n' ' ')"}; }
        sleep 0.5                                   # A's late RELEASE lands
        got=$(lhr "$F" "$probe")
        if [ "$got" = "$free" ]; then
            lost=$((lost + 1)); first=${first:-"round $i: a third process got '$got' while B held the lock"}
        fi
        lh_kill B
        sleep 0.3                                   # B's own RELEASE
    done
    assert_eq "$kind: lock right after another process's close: granted in every round ($ROUNDS)" 0 "$refused"
    assert_eq "$kind: a late RELEASE of the closed file never drops the new holder's lock ($ROUNDS rounds)" 0 "$lost"
    [ -z "$first" ] || say "# $kind: first failure: $first"
done

out=$(lh handoff "$F" ofd 30 2>&1)
assert_match "ofd: 30 handoffs between two processes with late RELEASEs: no EAGAIN" "fails 0$" "$out"

check "the daemon is alive after the late-release tests" daemon_alive
lh_cleanup
finish
