#!/bin/sh
# Node rebind (vmb_node_rebind): when a file of a bundle gets a new backing inode
# under its name (a freeze or flatten; here the control channel's test hook renames
# a copy made by the test over it), the node the kernel knows follows it: an open
# file's writes go to the new inode and never to the old one, its locks are held
# on the new inode (a direct flock -n / fcntl on the backing file is refused) and
# dropped from the old one, the holder record moves, st_ino follows; a looked-up
# file that is not open reads the new inode.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
command -v flock >/dev/null || skip "flock is not installed (util-linux)"
LH=$VMB_TESTBIN/helpers/lockhelper
[ -x "$LH" ] || hard_error "lockhelper is not built"
lhr() { "$LH" "$@" | sed 's/ t=[0-9.]*$//'; }
export VMB_TEST_CTL_HOOKS=1
mount_store
unset VMB_TEST_CTL_HOOKS
dev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
SOCK=$STORE/.vmbundlefs/run/ctl.$dev
req() { python3 - "$SOCK" "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"\0".join(a.encode() for a in sys.argv[2:]))
print(s.recv(65536).decode())
EOF
}

mkdir "$MNT/b1"
head -c 8192 /dev/zero | tr '\0' a >"$MNT/b1/disk"
truncate -s 1M "$MNT/b1/disk"
echo OLD >"$MNT/b1/g"
stat "$MNT/b1/g" >/dev/null   # looked up, not open

# A process holding the file open through the mount with an OFD lock and a flock,
# like a running VM, writing on a signal.
cat >"$T/holder.py" <<'EOF'
import fcntl, os, signal, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fd2 = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 100, 101, 0))  # F_OFD_SETLK
fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
def write(sig, frm):
    os.pwrite(fd, b"AFTER-REBIND", 4096)
    open(sys.argv[2] + ".wrote", "w").close()
signal.signal(signal.SIGUSR1, write)
open(sys.argv[2], "w").close()
while True:
    time.sleep(1)
EOF
python3 "$T/holder.py" "$MNT/b1/disk" "$T/ready" &
holder=$!
on_exit "kill $holder 2>/dev/null"
for i in $(seq 1 100); do [ -e "$T/ready" ] && break; sleep 0.1; done
check "the holder runs" test -e "$T/ready"
oldino=$(st_ino "$STORE/b1/disk")
check "before: a direct flock -n on the backing file is refused" \
    sh -c "! flock -n '$STORE/b1/disk' true"
expect_errno "before: a direct OFD lock on bytes 100-200 is refused" EAGAIN \
    lhr "$STORE/b1/disk" "ofd w 150 1"
check "before: the holder record names the old inode" \
    sh -c "ls '$STORE/.vmbundlefs/holders' | grep -q '^$(printf %016x "$oldino")\\.'"

ln "$STORE/b1/disk" "$T/old-inode"   # keeps the old inode to look at
cp --sparse=always --preserve=mode,timestamps "$STORE/b1/disk" "$STORE/b1/disk.new"
newino=$(st_ino "$STORE/b1/disk.new")
cp --preserve=mode "$STORE/b1/g" "$STORE/b1/g.new" && echo NEW >"$STORE/b1/g.new"
gnew=$(st_ino "$STORE/b1/g.new")

assert_eq "rebind disk" "0 " "$(req test-rebind b1/disk disk.new)"
assert_eq "the name now names the new inode" "$newino" "$(st_ino "$STORE/b1/disk")"
assert_eq "st_ino through the mount follows" "$newino" "$(st_ino "$MNT/b1/disk")"
check "after: a direct flock -n on the new backing file is refused" \
    sh -c "! flock -n '$STORE/b1/disk' true"
expect_errno "after: a direct OFD lock on bytes 100-200 of it is refused" EAGAIN \
    lhr "$STORE/b1/disk" "ofd w 150 1"
expect_errno "... bytes outside the lock are free" locked lhr "$STORE/b1/disk" "ofd w 300 1"
check "the old inode's locks are gone (flock -n)" flock -n "$T/old-inode" true
expect_errno "... (OFD)" locked lhr "$T/old-inode" "ofd w 150 1"
check "the holder record names the new inode" \
    sh -c "ls '$STORE/.vmbundlefs/holders' | grep -q '^$(printf %016x "$newino")\\.'"
check "... and not the old one" \
    sh -c "! ls '$STORE/.vmbundlefs/holders' | grep -q '^$(printf %016x "$oldino")\\.'"
expect_errno "a lock through the mount from another process still conflicts" EAGAIN \
    lhr "$MNT/b1/disk" "ofd w 150 1"
assert_match "the lock xattr still names the holder" "pid $holder" \
    "$(vmbio getxattr "$MNT/b1/disk" user.vmbundlefs.lock 2>&1)"

kill -USR1 "$holder"
for i in $(seq 1 50); do [ -e "$T/ready.wrote" ] && break; sleep 0.1; done
check "the open file's write after the rebind returned" test -e "$T/ready.wrote"
assert_eq "... it is in the new inode" "AFTER-REBIND" "$(dd if="$STORE/b1/disk" bs=1 skip=4096 count=12 2>/dev/null)"
assert_eq "... and not in the old one" "aaaaaaaaaaaa" "$(dd if="$T/old-inode" bs=1 skip=4096 count=12 2>/dev/null)"
assert_eq "... and reads through the mount see it" "AFTER-REBIND" "$(dd if="$MNT/b1/disk" bs=1 skip=4096 count=12 2>/dev/null)"

assert_eq "rebind g (looked up, not open)" "0 " "$(req test-rebind b1/g g.new)"
assert_eq "g through the mount reads the new inode" NEW "$(cat "$MNT/b1/g")"
assert_eq "... with its st_ino" "$gnew" "$(st_ino "$MNT/b1/g")"
echo more >>"$MNT/b1/g"
assert_eq "a write to g lands in the new inode" "NEW
more" "$(cat "$STORE/b1/g")"

# Refused: the new inode is locked by someone else, so the locks could not be
# taken there; nothing changes.
cp --sparse=always "$STORE/b1/disk" "$STORE/b1/disk.other"
flock "$STORE/b1/disk.other" sleep 30 &
blocker=$!
on_exit "kill $blocker 2>/dev/null"
wait_for 20 sh -c "! flock -n '$STORE/b1/disk.other' true" || say "# disk.other is not locked after 20 s"
out=$(req test-rebind b1/disk disk.other)
assert_match "rebind onto an inode locked by someone else fails (EAGAIN)" \
    "^11 cannot take the locks of process $holder .* again on the new backing file" "$out"
assert_eq "... the name still names the inode of the locks" "$newino" "$(st_ino "$STORE/b1/disk")"
check "... which are still held there" sh -c "! flock -n '$STORE/b1/disk' true"
kill "$blocker"; wait "$blocker" 2>/dev/null
kill "$holder"; wait "$holder" 2>/dev/null
for i in $(seq 1 50); do flock -n "$STORE/b1/disk" true 2>/dev/null && break; sleep 0.1; done
check "once the holder is gone, its locks on the new inode go" flock -n "$STORE/b1/disk" true
for i in $(seq 1 50); do
    ls "$STORE/.vmbundlefs/holders" | grep -q "^$(printf %016x "$newino")\." || break
    sleep 0.1
done
check "... and its holder record" \
    sh -c "! ls '$STORE/.vmbundlefs/holders' | grep -q '^$(printf %016x "$newino")\\.'"
finish
