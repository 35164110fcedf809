#!/bin/sh
# The locks a running VM holds through the mount stay on its image's backing file
# through a freeze or flatten by the daemon (issue 10): they are taken on the new
# backing file before it is renamed over the name, so a process locking the
# store's file directly never finds it unlocked, not even between the rename and
# the daemon's rebind of the node (VMB_TEST_FREEZE_DELAY_MS makes that window 2 s).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
command -v flock >/dev/null || skip "flock is not installed (util-linux)"
LH=$VMB_TESTBIN/helpers/lockhelper
[ -x "$LH" ] || hard_error "lockhelper is not built"
lhr() { "$LH" "$@" | sed 's/ t=[0-9.]*$//'; }
export VMB_TEST_FREEZE_DELAY_MS=2000
mount_store
unset VMB_TEST_FREEZE_DELAY_MS

mkdir "$MNT/vm"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$MNT/vm/disk.img"
cat >"$T/vm.py" <<'PY'
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 100, 101, 0))  # F_OFD_SETLK
fl = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fl, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
PY
python3 "$T/vm.py" "$MNT/vm/disk.img" "$T/locked" "$T/stop" &
vm=$!
on_exit "touch '$T/stop'; kill $vm 2>/dev/null"
for i in $(seq 1 100); do [ -e "$T/locked" ] && break; sleep 0.1; done
[ -e "$T/locked" ] || fail "the VM did not take its locks"
check "before: a direct flock -n is refused" sh -c "! flock -n '$STORE/vm/disk.img' true"

# op CMD...: run a structural command in the background; as soon as the image's
# name names a new inode, lock the store's file directly.
op() {
	local what=$1 ino i
	shift
	ino=$(st_ino "$STORE/vm/disk.img")
	# a process with the file open through the mount, which fstats it in the
	# window below
	rm -f "$T/go" "$T/fstat.out"
	timeout 30 python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
time.sleep(1.1)
print(os.fstat(fd).st_size)' "$MNT/vm/disk.img" "$T/go" >"$T/fstat.out" 2>&1 &
	local fst=$!
	"$VMB_BIN" "$@" >"$T/op.out" 2>&1 &
	local pid=$!
	local end=$((SECONDS + 20))   # polled closely: the window after the rename is 2 s
	while [ $SECONDS -lt $end ]; do
		[ "$(st_ino "$STORE/vm/disk.img")" != "$ino" ] && break
		sleep 0.005
	done
	check "$what: the image got a new inode" test "$(st_ino "$STORE/vm/disk.img")" != "$ino"
	check "$what, right after the rename: a direct flock -n is refused" \
	    sh -c "! flock -n '$STORE/vm/disk.img' true"
	expect_errno "... and a direct OFD lock on bytes 100-200" EAGAIN \
	    lhr "$STORE/vm/disk.img" "ofd w 150 1"
	# Still in the window (the image held alone by the freeze): an fstat through
	# the mount once the kernel's attributes expired (1 s) holds the node while
	# it waits for the image, and the daemon's rebind of the node must not wait
	# for that stat (session 22: it did, and both waited for ever).
	touch "$T/go"
	end=$((SECONDS + 15))   # a stat stuck in the daemon cannot be killed
	while kill -0 $fst 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
	kill -0 $fst 2>/dev/null && fail "$what: an fstat through the mount in the window still waits after 15 s (the daemon hangs)"
	wait $fst
	assert_eq "$what, in the window: an fstat through the mount answers" \
	    $((2 * 1024 * 1024)) "$(cat "$T/fstat.out")"
	end=$((SECONDS + 20))
	while kill -0 $pid 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
	kill -0 $pid 2>/dev/null && fail "$what: the command still runs 20 s after the rename (the daemon hangs?)"
	wait $pid
	assert_eq "$what: the command succeeds" 0 $? || cat "$T/op.out"
	check "$what, after: a direct flock -n is refused" \
	    sh -c "! flock -n '$STORE/vm/disk.img' true"
	expect_errno "... and the same through the mount" EAGAIN lhr "$MNT/vm/disk.img" "ofd w 150 1"
}
op snapshot snapshot "$MNT" vm s1
op flatten flatten "$MNT" vm
touch "$T/stop"; wait "$vm"
check "the VM gone: its file is free" flock -n "$STORE/vm/disk.img" true
finish
