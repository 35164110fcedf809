#!/bin/sh
# Locks are mirrored onto the backing files: a process using the store directly and
# a second mount of the same store see locks taken through the mount, and the other
# way round; F_GETLK names the holder (through the holder registry for a lock held
# through another mount).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
mount_store
mkdir "$MNT/vm" || fail "mkdir"
echo '{"name": "vm"}' >"$MNT/vm/config.json"
head -c 65536 /dev/urandom >"$MNT/vm/nvram.bin"
head -c 65536 /dev/urandom >"$MNT/vm/disk.img"
F=$MNT/vm/nvram.bin
B=$STORE/vm/nvram.bin
D=$MNT/vm/disk.img
DB=$STORE/vm/disk.img

# ---- through the mount -> directly on the backing file ----
lh_bg H "$F" 'posix w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount POSIX write lock -> direct POSIX lock on the backing file refused" EAGAIN "$(lhr "$B" 'posix w 0 1')"
assert_eq "mount POSIX write lock -> direct OFD read lock refused" EAGAIN "$(lhr "$B" 'ofd r 100 1')"
assert_match "mount POSIX write lock -> direct F_GETLK sees a write lock" '^pid -?[0-9]+ w 0 0$' "$(lhr "$B" 'getlk r 0 0')"
lh_kill H
assert_eq "after the holder's SIGKILL the direct lock succeeds" locked "$(lhr "$B" 'posix w 0 0')"

lh_bg H "$D" 'ofd w 100 102' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount OFD lock on 100-201 -> direct OFD lock at 150 refused" EAGAIN "$(lhr "$DB" 'ofd w 150 1')"
assert_eq "... direct OFD lock at 0-99 granted (ranges are mirrored, not widened)" locked "$(lhr "$DB" 'ofd w 0 100')"
assert_eq "... direct OFD lock at 202 granted" locked "$(lhr "$DB" 'ofd w 202 1')"
lh_kill H

lh_bg H "$F" 'flock ex' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount flock LOCK_EX -> direct flock LOCK_EX refused" EAGAIN "$(lhr "$B" 'flock ex')"
assert_eq "mount flock LOCK_EX -> direct flock LOCK_SH refused" EAGAIN "$(lhr "$B" 'flock sh')"
lh_kill H
lh_bg H "$F" 'flock sh' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount flock LOCK_SH -> direct flock LOCK_SH shares" locked "$(lhr "$B" 'flock sh')"
assert_eq "mount flock LOCK_SH -> direct flock LOCK_EX refused" EAGAIN "$(lhr "$B" 'flock ex')"
lh_kill H

# ---- directly on the backing file -> through the mount ----
lh_bg H "$B" 'posix w 0 0' 'hold'
wait_out H '^holding' || fail "direct holder did not start"
assert_eq "direct POSIX write lock -> mount POSIX lock refused" EAGAIN "$(lhr "$F" 'posix r 5 1')"
assert_eq "direct POSIX write lock -> mount OFD lock refused" EAGAIN "$(lhr "$F" 'ofd w 0 0')"
assert_eq "direct POSIX write lock -> mount F_GETLK gives the holder's pid" "pid $(pid_of H) w 0 0" "$(lhr "$F" 'getlk w 0 0')"
lh_bg W "$F" 'posix w 0 0 wait' 'hold'
sleep 0.3
t0=$(now_s)
lh_kill H
if wait_out W '^locked' 5; then
    ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
    assert_num "a mount F_SETLKW waiting on a direct holder returns within 1 s of its SIGKILL (${ms} ms)" "$ms" -le 1000
else
    notok "a mount F_SETLKW waiting on a direct holder is woken by its SIGKILL" "not within 5 s: $(out_of W)"
fi
lh_kill W

lh_bg H "$B" 'flock ex' 'hold'
wait_out H '^holding' || fail "direct holder did not start"
assert_eq "direct flock LOCK_EX -> mount flock refused" EAGAIN "$(lhr "$F" 'flock sh')"
lh_bg W "$B" 'flock ex wait' 'hold'
lh_kill H
wait_out W '^locked' 5
assert_eq "... the next direct waiter gets it" locked "$(out_of W | head -n 1)"
lh_kill W
assert_eq "... and after that one dies, the mount gets it" locked "$(lhr "$F" 'flock ex')"

lh_bg H "$F" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
lh_bg W "$B" 'ofd w 0 0 wait' 'hold'
sleep 0.3
t0=$(now_s)
lh_kill H
if wait_out W '^locked' 5; then
    ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
    assert_num "a direct F_OFD_SETLKW waiting on a mount holder returns within 1 s of its SIGKILL (${ms} ms)" "$ms" -le 1000
else
    notok "a direct F_OFD_SETLKW waiting on a mount holder is woken by its SIGKILL" "not within 5 s: $(out_of W)"
fi
lh_kill W

# ---- a second mount of the same store ----
MNT2=$T/mnt2
mkdir "$MNT2"
( sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon2.pid" "$VMB_BIN" mount -f --log="$T/log2" "$STORE" "$MNT2"
  echo $? >"$T/daemon2.rc" ) </dev/null >>"$T/daemon2.out" 2>&1 &
on_exit 'mountpoint -q "$MNT2" && fusermount3 -uz "$MNT2"; [ -s "$T/daemon2.pid" ] && kill -9 "$(cat "$T/daemon2.pid")" 2>/dev/null'
wait_for 30 mountpoint -q "$MNT2"   # as mount_store: a sanitizer build can take > 10 s
mountpoint -q "$MNT2" || { cat "$T/daemon2.out" "$T/log2" 2>/dev/null; fail "the second mount of the store did not appear"; }
F2=$MNT2/vm/nvram.bin
# free_on_backing FILE STEP: STEP (a lock taken directly on the backing file, let go
# at once) is granted. A holder's OFD and flock locks through one mount go when that
# daemon handles the RELEASE the kernel sends after the holder died: a moment later,
# which another mount cannot wait for as it does for its own.
free_on_backing() { [ "$(lhr "$1" "$2")" = locked ]; }

lh_bg H "$F" 'posix w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount 1 POSIX lock -> mount 2 POSIX lock refused" EAGAIN "$(lhr "$F2" 'posix w 10 1')"
assert_eq "mount 1 POSIX lock -> mount 2 F_GETLK gives the holder's pid (registry)" "pid $(pid_of H) w 0 0" "$(lhr "$F2" 'getlk r 0 0')"
assert_eq "mount 1 POSIX lock -> mount 2 xattr names the holder" "pid $(pid_of H) (lockhelper) holds a write lock" "$(vmbio getxattr "$F2" user.vmbundlefs.lock 2>&1)"
lh_bg W "$F2" 'posix w 0 0 wait' 'hold'
sleep 0.3
t0=$(now_s)
lh_kill H
if wait_out W '^locked' 5; then
    ms=$(ms_between "$t0" "$(stamp_of W '^locked')")
    assert_num "a mount 2 waiter returns within 1 s of the mount 1 holder's SIGKILL (${ms} ms)" "$ms" -le 1000
else
    notok "a mount 2 waiter is woken by the mount 1 holder's SIGKILL" "not within 5 s: $(out_of W)"
fi
lh_kill W

lh_bg H "$F2" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount 2 OFD lock -> mount 1 OFD lock refused" EAGAIN "$(lhr "$F" 'ofd r 0 1')"
assert_eq "mount 2 OFD lock -> mount 1 F_GETLK gives the holder's pid (registry)" "pid $(pid_of H) w 0 0" "$(lhr "$F" 'getlk w 7 1')"
assert_eq "mount 2 OFD lock -> mount 1 xattr names the holder" "pid $(pid_of H) (lockhelper) holds a write lock" "$(vmbio getxattr "$F" user.vmbundlefs.lock 2>&1)"
assert_match "mount 2 OFD lock on the aux file -> rm through mount 1 refused" "Device or resource busy" "$(rm "$MNT/vm/config.json" 2>&1)"
assert_match "... and mount 1's log names the holder" "pid $(pid_of H) \(lockhelper\) holds a lock on 'vm/nvram.bin'" "$(grep refused "$T/log" | tail -n 1)"
assert_match "... vmbundlefs ls names the holder" "in use by pid $(pid_of H) \(lockhelper\)" "$("$VMB_BIN" ls "$STORE" 2>&1 | grep '^vm')"
lh_kill H
wait_for 20 free_on_backing "$B" 'ofd w 0 0'
assert_eq "after the mount 2 holder's SIGKILL mount 1 gets the lock" locked "$(lhr "$F" 'ofd w 0 0')"

lh_bg H "$F2" 'flock ex' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount 2 flock -> mount 1 flock refused" EAGAIN "$(lhr "$F" 'flock ex')"
lh_kill H
wait_for 20 free_on_backing "$B" 'flock ex'
lh_bg H "$F" 'flock ex' 'hold'
wait_out H '^holding' || fail "holder did not start"
assert_eq "mount 1 flock -> mount 2 flock refused" EAGAIN "$(lhr "$F2" 'flock sh')"
lh_kill H
wait_for 20 free_on_backing "$B" 'flock ex'
assert_eq "mount 2 flock free after the holder's SIGKILL" locked "$(lhr "$F2" 'flock ex')"

wait_for 20 sh -c "[ -z \"\$(ls '$STORE/.vmbundlefs/holders' 2>/dev/null)\" ]"
assert_eq "no registry entries are left once no lock is held" "" "$(ls "$STORE/.vmbundlefs/holders" 2>/dev/null)"

lh_cleanup
fusermount3 -u "$MNT2" || fusermount3 -uz "$MNT2"
wait_for 30 test -e "$T/daemon2.rc"   # a sanitizer build's exit (leak check) takes time
assert_eq "the second daemon exits with status 0" 0 "$(cat "$T/daemon2.rc" 2>/dev/null)"
check "the second daemon's log has no sanitizer report" sh -c "! grep -Eq '$_VMB_BAD_LOG' '$T/log2' '$T/daemon2.out' 2>/dev/null"
finish
