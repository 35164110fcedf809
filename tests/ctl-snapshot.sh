#!/bin/sh
# Snapshot and clone of a bundle in use, through the mount's daemon (the control
# channel): a snapshot taken while fio --verify writes equals the image at that
# instant (fio stopped) and stays so while the writes go on; a clone of a bundle
# whose "VM" holds its image open and locked and keeps writing is crash-consistent;
# after the freeze the locks are still held on the file (a direct flock -n or OFD
# lock on the backing file is refused) and the writes go to the live file only.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
command -v fio >/dev/null || skip "fio is not installed"
command -v flock >/dev/null || skip "flock is not installed (util-linux)"
LH=$VMB_TESTBIN/helpers/lockhelper
lhr() { "$LH" "$@" | sed 's/ t=[0-9.]*$//'; }
M=$((1024 * 1024))
mount_store

# ---- a snapshot under fio --verify ----
mkdir "$MNT/vm"
fio --name=w --filename="$MNT/vm/disk.img" --size=32M --rw=randwrite --bs=4k \
    --ioengine=psync --thread --verify=crc32c --do_verify=0 --verify_state_save=0 \
    --time_based --runtime=60 \
    --randrepeat=0 --output="$T/fio.out" >/dev/null 2>&1 &
fio=$!
on_exit "kill -9 $fio 2>/dev/null"
for i in $(seq 1 100); do [ "$(st_size "$MNT/vm/disk.img" 2>/dev/null || echo 0)" -ge $((32 * M)) ] && break; sleep 0.1; done
sleep 2
kill -STOP "$fio"
sleep 0.5   # a write in flight when it stopped lands
sum=$(md5sum <"$MNT/vm/disk.img")
out=$("$VMB_BIN" snapshot "$MNT" vm s1 2>&1)
rc=$?
assert_eq "snapshot through the mount (exit 0)" 0 "$rc" || say "$out"
assert_eq "... prints where the snapshot is seen" "$MNT/.snapshots/vm@s1" "$out"
kill -CONT "$fio"
check "the manifest is in the store" test -f "$STORE/.vmbundlefs/snapshots/vm@s1"
check "fio goes on writing" sh -c "sleep 2; kill -0 $fio"
out=$("$VMB_BIN" clone "$MNT" vm@s1 s1copy 2>&1)
assert_eq "clone of the snapshot (exit 0)" 0 $? || say "$out"
assert_eq "the snapshot equals the image at the instant fio was stopped" "$sum" \
    "$(md5sum <"$MNT/s1copy/disk.img")"
if [ -d "$MNT/.snapshots/vm@s1" ]; then
    assert_eq "... read through MNT/.snapshots too" "$sum" "$(md5sum <"$MNT/.snapshots/vm@s1/disk.img")"
fi
sleep 2
check "... and the live image has moved on" test "$(md5sum <"$MNT/vm/disk.img")" != "$sum"
assert_eq "... while the snapshot stays the same" "$sum" "$(md5sum <"$MNT/s1copy/disk.img")"
kill "$fio" 2>/dev/null; wait "$fio" 2>/dev/null
out=$(fio --name=w --filename="$MNT/vm/disk.img" --size=32M --rw=randwrite --bs=4k \
    --ioengine=psync --verify=crc32c --verify_only --verify_state_save=0 \
    --randrepeat=0 2>&1)
# (fio's verify_only replays its own random sequence: only meaningful with a
# fixed seed; what matters here is that the image reads back without error)
check "the live image reads back whole" dd if="$MNT/vm/disk.img" of=/dev/null bs=1M status=none

# ---- a clone of a running VM's bundle ----
mkdir "$MNT/run"
truncate -s 8M "$MNT/run/disk.img"
echo '{"cpu": 2}' >"$MNT/run/config.json"
cat >"$T/vm.py" <<'EOF'
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 100, 101, 0))  # F_OFD_SETLK
fl = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fl, fcntl.LOCK_SH | fcntl.LOCK_NB)
last = sys.argv[2]
i = 0
while not os.path.exists(sys.argv[3]):
    i += 1
    rec = (b"%012d" % i).ljust(4096, b".")
    os.pwrite(fd, rec, 4096 * (1 + i % 1000))   # the data first,
    os.pwrite(fd, rec, 0)                       # then the header naming it
    with open(last + ".tmp", "w") as f:
        f.write(str(i))
    os.rename(last + ".tmp", last)
EOF
python3 "$T/vm.py" "$MNT/run/disk.img" "$T/last" "$T/stop" &
vm=$!
on_exit "touch '$T/stop'; kill $vm 2>/dev/null"
for i in $(seq 1 100); do [ -s "$T/last" ] && [ "$(cat "$T/last")" -gt 100 ] && break; sleep 0.1; done
before=$(cat "$T/last")
oldino=$(st_ino "$STORE/run/disk.img")
out=$("$VMB_BIN" clone "$MNT" run run2 2>&1)
assert_eq "clone of the running VM's bundle (exit 0)" 0 $? || say "$out"
after=$(cat "$T/last")
head=$(head -c 12 "$MNT/run2/disk.img")
n=$((10#$head))
check "the clone holds every write that returned before it ($n >= $before)" test "$n" -ge "$before"
check "... and none that started after it ($n <= $((after + 1)))" test "$n" -le $((after + 1))
rec=$(dd if="$MNT/run2/disk.img" bs=4096 skip=$((1 + n % 1000)) count=1 2>/dev/null | head -c 12)
assert_eq "... crash-consistent: the record its header names is there" "$head" "$rec"
assert_eq "the clone's config is a plain copy" '{"cpu": 2}' "$(cat "$MNT/run2/config.json")"
check "the VM's file got a new backing inode (frozen)" test "$(st_ino "$STORE/run/disk.img")" != "$oldino"
check "the VM's locks are held on it: a direct flock -n is refused" \
    sh -c "! flock -n '$STORE/run/disk.img' true"
expect_errno "... and a direct OFD lock on bytes 100-200" EAGAIN lhr "$STORE/run/disk.img" "ofd w 150 1"
expect_errno "... and the same through the mount" EAGAIN lhr "$MNT/run/disk.img" "ofd w 150 1"
for i in $(seq 1 50); do [ "$(cat "$T/last")" -gt $((after + 50)) ] && break; sleep 0.1; done
assert_num "the VM goes on writing" "$(cat "$T/last")" -gt $((after + 50))
assert_eq "... to its own bundle only: the clone does not change" "$head" "$(head -c 12 "$MNT/run2/disk.img")"
check "... the live image does" test "$(head -c 12 "$MNT/run/disk.img")" != "$head"
touch "$T/stop"; wait "$vm"

# ---- after the snapshot: writes never show in it ----
echo before >"$MNT/run/note"
"$VMB_BIN" snapshot "$MNT" run s2 >/dev/null 2>&1 || fail "snapshot run s2"
echo after >>"$MNT/run/note"
"$VMB_BIN" clone "$MNT" run@s2 s2copy >/dev/null 2>&1 || fail "clone run@s2"
assert_eq "a write after the snapshot is not in it" before "$(cat "$MNT/s2copy/note")"
assert_eq "... and is in the live file" "before
after" "$(cat "$MNT/run/note")"

# ---- deleted through the mount: gone from the view at once ----
check "run@s2 is seen through the view" test -d "$MNT/.snapshots/run@s2"
"$VMB_BIN" snapshot --delete "$MNT" run@s2 >/dev/null 2>&1 || fail "snapshot --delete run@s2"
expect_errno "a snapshot deleted through the mount cannot be looked up at once" ENOENT \
    vmbio stat "$MNT/.snapshots/run@s2"
check "... and is not listed" bash -c "! ls '$MNT/.snapshots' | grep -qx 'run@s2'"
finish
