#!/bin/sh
# The write path of vmbundlefs(5) "Write path": large aligned writes reach the
# backing file with O_DIRECT, queued behind the writer. Checks that the direct
# path is really taken (and not with -o buffered_writes), that queued writes and
# the buffered writes, zero writes, truncates and reads mixed with them keep
# their order, and that every accepted byte is in the backing file once the
# file is closed or fsync'ed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
# Every queued write waits up to 20 ms (varying) before it starts, so the writes
# land out of order and the operations that follow
# it really meet it in the queue (a test hook of src/image/dio.c).
export VMB_TEST_DIO_DELAY_US=20000
mount_store
M=1048576
K=4096
mkdir "$MNT/b"
F=$MNT/b/disk.img
B=$STORE/b/disk.img
R=$T/ref.img

# direct_fds: how many of the daemon's descriptors of the backing file are O_DIRECT.
direct_fds() {
    local pid fd n=0 flags
    pid=$(daemon_pid)
    for fd in /proc/$pid/fd/*; do
        [ "$(readlink "$fd")" = "$B" ] || continue
        flags=$(awk '/^flags:/ { print $2 }' "/proc/$pid/fdinfo/${fd##*/}")
        [ $(( 0$flags & 040000 )) -ne 0 ] && n=$((n + 1))
    done
    echo $n
}

# 1. A 64 MiB sequential write in 1 MiB requests goes direct.
: >"$F"
exec 3<"$F"    # keeps the file open in the daemon
dd if=/dev/urandom of="$R" bs=1M count=64 status=none
dd if="$R" of="$F" bs=1M conv=notrunc status=none || fail "dd into the mount"
assert_eq "a large aligned write is written with O_DIRECT (one O_DIRECT descriptor)" 1 "$(direct_fds)"
check "the mount reads back what was written (kernel cache)" cmp "$R" "$F"
echo 3 >/proc/sys/vm/drop_caches
check "the mount reads back what was written (through the daemon)" cmp "$R" "$F"
exec 3<&-
check "after the last close the backing file holds every byte" cmp "$R" "$B"

# 2. Mixed, back to back through one descriptor: queued direct writes and small,
# unaligned and zero writes that overlap them, truncates, reads and fsyncs.
rm -f "$F" "$R"
: >"$F"; : >"$R"
RANDOM=4242
lo=0 ll=$((128 * K))   # the last direct write: the next ones often land inside it
big() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }
for i in $(seq 1 300); do
    fill=p$((i % 7 + 1)); [ $((RANDOM % 6)) = 4 ] && fill=0
    inside=$(( lo + RANDOM * 31 % ll ))
    case $((RANDOM % 9)) in
    0|1|2) lo=$(( (RANDOM % 48) * 256 * K )); ll=$(( (RANDOM % 8 + 1) * 128 * K ))
       echo "w $lo $ll $fill" ;;                                               # direct
    3) echo "w $inside $(( RANDOM % 9000 + 1 )) $fill" ;;                      # small, inside it
    4) echo "w $(( lo + 100 )) $(( 300 * K )) $fill" ;;                        # unaligned, over it
    5) echo "w $(( lo / (256 * K) * 256 * K )) $(( 256 * K )) 0" ;;            # zeros, over it
    6) if [ $((RANDOM % 3)) = 0 ]; then echo "t $(big $((48 * M)))"
       else echo "r $inside $(( RANDOM % 70000 + 1 ))"; fi ;;
    8) echo "w $lo $ll $fill" ;;                                             # direct, over it again
    7) if [ $((RANDOM % 10)) = 0 ]; then echo s
       else echo "w $(big $((48 * M))) $(( RANDOM % 70000 + 1 )) $fill"; fi ;;
    esac
done >"$T/ops"
exec 3<"$F"    # the image (and its queue) stays open across the checks
check "mixed operations through the mount" vmbio ops "$F" <"$T/ops"
check "mixed operations on the reference" vmbio ops "$R" <"$T/ops"
assert_eq "mixed: size" "$(st_size "$R")" "$(st_size "$F")"
check "mixed: identical bytes through the mount (kernel cache)" cmp "$R" "$F"
echo 3 >/proc/sys/vm/drop_caches
check "mixed: identical bytes through the daemon" cmp "$R" "$F"
check "mixed: every non-zero byte is in a data extent of the map" vmbio mapcheck "$F"
check "mixed: the map's holes read as zeros" vmbio checkholes "$F"
exec 3<&-
check "mixed: identical bytes in the backing file after the last close" cmp "$R" "$B"

# 2b. Direct writes to one range inside the file, back to back: each waits for the
# queued one it overlaps, so the last one wins whatever their delays.
rm -f "$F"
{ echo "w 0 $((4 * M)) p1"; echo s
  for i in 2 3 4 5 6 7 8 9; do echo "w $M $M p$i"; done
  for i in 2 3 4 5 6 7 8 9; do echo "w $((2 * M)) $M p$((11 - i))"; done
} >"$T/ops"
check "overlapping direct writes inside the file" vmbio ops "$F" <"$T/ops"
echo 3 >/proc/sys/vm/drop_caches
check "overlapping direct writes: the last one's bytes [1M, 2M)" vmbio verify "$F" $M $M p9
check "overlapping direct writes: the last one's bytes [2M, 3M)" vmbio verify "$F" $((2 * M)) $M p2

# 3. fsync waits for the queued writes.
exec 3<"$F"
vmbio pwrite "$F" $((8 * M)) $((16 * M)) p9 sync >/dev/null || fail "pwrite+fsync"
check "after fsync the backing file holds the written range (file still open)" \
    vmbio verify "$B" $((8 * M)) $((16 * M)) p9
exec 3<&-

# 4. Space reserved ahead of a writer that extends the file (src/image/image.c,
# RESERVE_AHEAD) is given back when the run ends and at the last close: the
# backing file then allocates exactly its data, and its holes are holes.
alloc_kib() { echo $(( $(stat -c %b "$1") / 2 )); }
# wait_alloc KIB FILE: FILE allocates KIB (and at most 64 KiB more: ext4 counts its
# extent tree blocks); the RELEASE of the last close comes after close(2) returns.
wait_alloc() {
    local n=100 a
    while [ $n -gt 0 ]; do
        a=$(alloc_kib "$2")
        [ "$a" -ge "$1" ] && [ "$a" -le $(($1 + 64)) ] && return 0
        sleep 0.05; n=$((n - 1))
    done
    echo "backing file allocates $(alloc_kib "$2") KiB, not $1" >&2
    return 1
}
rm -f "$F"
dd if=/dev/urandom of="$F" bs=1M count=10 status=none || fail "dd into the mount"
check "sequential 10 MiB: after the last close the backing file allocates 10 MiB" \
    wait_alloc $((10 * 1024)) "$B"
rm -f "$F"
printf 'w 0 %d p1\nw %d %d p2\nw %d %d 0\nw %d %d p3\nw %d 262144 p4\n' \
    $M $((8 * M)) $M $((9 * M)) $M $((10 * M)) $M $((20 * M)) >"$T/ops"
check "a run, a jump, a zero run, a run, a jump, through one descriptor" \
    vmbio ops "$F" <"$T/ops"
check "after it the backing file allocates the 3.25 MiB of data only" \
    wait_alloc $((3 * 1024 + 256)) "$B"
assert_eq "the backing file's extents: data [0,1M) [8M,9M) [10M,11M) [20M,20.25M)" \
    "$M $((8 * M)) $((9 * M)) $((10 * M)) $((11 * M)) $((20 * M))" \
    "$(vmbio seek "$B" 0 hole) $(vmbio seek "$B" $M data) $(vmbio seek "$B" $((8 * M)) hole) $(vmbio seek "$B" $((9 * M)) data) $(vmbio seek "$B" $((10 * M)) hole) $(vmbio seek "$B" $((11 * M)) data)"
check "the zero run reads as zeros" vmbio verify "$F" $((9 * M)) $M 0
exec 3<"$F"
dd if=/dev/urandom of="$F" bs=1M count=4 seek=64 conv=notrunc status=none ||
    fail "dd into the mount"
check "file still open: its data is there" vmbio verify "$F" 0 $M p1
truncate -s $((66 * M)) "$F" || fail "truncate"
check "a truncate gives back what was reserved past the new end" \
    wait_alloc $((3 * 1024 + 256 + 2 * 1024)) "$B"
exec 3<&-

# 5. A write-only descriptor's writes bypass the mount's page cache (the kernel's
# FOPEN_DIRECT_IO), and the pages other descriptors cached show them at once.
cached_pages() { fincore -n -o PAGES "$1" | tr -d ' '; }
rm -f "$F"
dd if=/dev/urandom of="$F" bs=1M count=8 status=none || fail "dd into the mount"
assert_eq "a write-only descriptor's writes leave nothing in the mount's page cache" 0 \
    "$(cached_pages "$F")"
exec 3<"$F"    # open throughout: the cached pages are kept across opens
cat "$F" >/dev/null
assert_eq "a reader caches the file" 2048 "$(cached_pages "$F")"
for L in K L M; do
    head -c $((3 * M)) /dev/zero | tr '\0' "$L" >"$T/pat"
    dd if="$T/pat" of="$F" bs=1M seek=2 conv=notrunc status=none ||
        fail "dd (write-only) into the mount"
    check "pattern $L: the cached readers see the write-only descriptor's write at once" \
        cmp -n $((3 * M)) -i 0:$((2 * M)) "$T/pat" "$F"
done
exec 3<&-
# A set-user-ID file keeps the cached write path, which clears the bit when an
# unprivileged process writes (here: nobody, so the mount allows other users).
remount -o allow_other
rm -f "$F"
head -c $M /dev/urandom >"$F" || fail "write"
chmod 4777 "$F" || fail "chmod"
if command -v setpriv >/dev/null; then
    chmod 755 "$T" "$MNT" "$MNT/b"   # let nobody reach the file
    setpriv --reuid=65534 --regid=65534 --clear-groups \
        dd if=/dev/urandom of="$F" bs=1M count=1 conv=notrunc status=none ||
        fail "dd as nobody"
    assert_eq "an unprivileged write-only write clears the set-user-ID bit" 777 \
        "$(stat -c %a "$F")"
else
    skip "an unprivileged write clears the set-user-ID bit" "no setpriv"
fi

# 6. -o buffered_writes: no O_DIRECT descriptor, same bytes.
remount -o buffered_writes
rm -f "$F"; : >"$F"
exec 3<"$F"
dd if="$R" of="$F" bs=1M conv=notrunc status=none || fail "dd into the mount"
assert_eq "with -o buffered_writes no descriptor is O_DIRECT" 0 "$(direct_fds)"
exec 3<&-
check "with -o buffered_writes the backing file holds every byte" cmp "$R" "$B"

finish
