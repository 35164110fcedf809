#!/bin/sh
# The write barrier of a bundle (vfs_barrier.c), raised through the control
# channel's test hook: once it is up, every write that returned is on the backing
# file, writes that start wait (and are not there), the file stays the same while
# they wait; other bundles and reads go on; new entries in the bundle wait too;
# resume (or the hook's time running out) lets them through.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
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

mkdir "$MNT/b1" "$MNT/b2"
truncate -s 4M "$MNT/b1/f"
echo other >"$MNT/b2/g"
# The writer: numbered 4 KiB records, each at its own offset and in the header
# block; after each write has returned, its number goes to $T/last.
cat >"$T/writer.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
last = sys.argv[2]
i = 0
while not os.path.exists(sys.argv[3]):
    i += 1
    rec = (b"%012d" % i).ljust(4096, b".")
    os.pwrite(fd, rec, 4096 * (1 + i % 1000))
    os.pwrite(fd, rec, 0)
    with open(last + ".tmp", "w") as f:
        f.write(str(i))
    os.rename(last + ".tmp", last)
EOF
python3 "$T/writer.py" "$MNT/b1/f" "$T/last" "$T/stop" &
writer=$!
on_exit "touch '$T/stop'; kill $writer 2>/dev/null"
for i in $(seq 1 100); do [ -s "$T/last" ] && [ "$(cat "$T/last")" -gt 50 ] && break; sleep 0.1; done
assert_num "the writer runs" "$(cat "$T/last")" -gt 50
# stable_last: $T/last once it holds still (two reads 0.2 s apart agree; 5 s at
# most): a writer held at the barrier may still be between the write that returned
# and the rename of its number when the barrier goes up.
stable_last() {
    local a b i
    a=$(cat "$T/last")
    for i in $(seq 1 25); do
        sleep 0.2
        b=$(cat "$T/last")
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}
writer_past() { [ "$(cat "$T/last")" -gt "$1" ]; }

exec 7<"$MNT/b1/f"   # a reader's descriptor, opened before the pause
out=$(req test-pause b1 30)
assert_eq "pause b1" "0 paused" "$out"
last=$(cat "$T/last")
head=$(head -c 12 "$STORE/b1/f")
n=$((10#$head))
# In flight when the barrier went up: at most one write past the last returned.
check "every write that returned is on the backing file (last returned $last, file has $n)" \
    test "$n" -ge "$last"
check "... and none that started after (at most the one in flight: $n <= $((last + 1)))" \
    test "$n" -le $((last + 1))
last=$(stable_last)
sum1=$(md5sum <"$STORE/b1/f")
sleep 1
assert_eq "the writer is held at the barrier" "$last" "$(cat "$T/last")"
assert_eq "the file stays the same while writes wait" "$sum1" "$(md5sum <"$STORE/b1/f")"
# (through descriptors: a lookup of a name in the paused bundle waits, as a new
# entry does, so that no name is resolved while a freeze moves a file to its new
# inode; /dev/fd/7 opens the file without one)
check "reads of the paused bundle go on" timeout 5 cmp -s /dev/fd/7 "$STORE/b1/f"
check "writes to another bundle go on" timeout 5 sh -c "echo more >>'$MNT/b2/g'"
check "new entries in another bundle go on" timeout 5 mkdir "$MNT/b2/d"
mkdir "$MNT/b1/d" 2>"$T/mkdir.err" &
mk=$!
stat "$MNT/b1/not-seen-before" >/dev/null 2>&1 &
lk=$!
sleep 0.5
check "a new entry in the paused bundle waits" test ! -e "$STORE/b1/d"
check "a lookup of a name in the paused bundle waits" kill -0 $lk
assert_eq "... and so does the file's md5 (checked again)" "$sum1" "$(md5sum <"$STORE/b1/f")"

assert_eq "resume" "0 " "$(req test-resume)"
wait "$mk"
check "the waiting mkdir went through" test -d "$STORE/b1/d"
wait "$lk"
exec 7<&-
wait_for 20 writer_past $((last + 20))
assert_num "the writer goes on after resume" "$(cat "$T/last")" -gt $((last + 20))

# A barrier given 5 s is let down by the daemon itself (it counts whole seconds:
# after 4 to 5 s).
assert_eq "pause b1 for 5 s" "0 paused" "$(req test-pause b1 5)"
last=$(stable_last)
sleep 1
assert_eq "... the writer waits" "$last" "$(cat "$T/last")"
wait_for 30 writer_past $((last + 5))
assert_num "... and goes on once the time is out" "$(cat "$T/last")" -gt $((last + 5))
assert_match "... which the log says" "test barrier let down" "$(cat "$T/log")"

# Bad uses of the hook.
assert_match "pause of a missing bundle: ENOENT" "^2 cannot pause bundle 'nosuch'" "$(req test-pause nosuch 5)"
assert_match "pause of a non-bundle name: EINVAL" "^22 " "$(req test-pause ../x 5)"
assert_eq "pause b1 again" "0 paused" "$(req test-pause b1 30)"
assert_match "a second pause while one is up: EBUSY" "^16 cannot pause bundle 'b2': another" "$(req test-pause b2 5)"
touch "$T/stop"
assert_eq "resume" "0 " "$(req test-resume)"
wait "$writer"
# Unmounting with a barrier up: the channel lets it down as it stops.
assert_eq "pause b1 once more" "0 paused" "$(req test-pause b1 30)"
start=$(date +%s)
unmount_store
assert_num "unmount with a barrier up (30 s) is not held by it" $(( $(date +%s) - start )) -lt 25
finish
