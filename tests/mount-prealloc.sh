#!/bin/sh
# fallocate --keep-size past EOF is the user's (issue 9): fsck never gives it back,
# whether it was made through the mount or directly in the store. Space a daemon
# reserved ahead of a direct writer and could not give back (kill -9) carries a
# record (trusted.vmbundlefs.reserved, src/image/resrec.h): fsck gives back that,
# and only that; with a user's preallocation past the reservation, both are kept.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v fallocate >/dev/null 2>&1 || skip "fallocate is not installed (util-linux)"
command -v getfattr >/dev/null 2>&1 || skip "getfattr is not installed (attr)"
M=1048576
kib() { echo $(( $(stat -c %b "$1") / 2 )); }
rec() { getfattr --only-values -n trusted.vmbundlefs.reserved "$1" 2>/dev/null; }
fsck_rc() { "$VMB_BIN" fsck "$@" "$STORE" >"$T/fsck.out" 2>&1; echo $?; }

# Can the store's filesystem preallocate past EOF and say so (FIEMAP)?
printf x >"$T/probe"
fallocate -n -o 0 -l $M "$T/probe" 2>/dev/null && [ "$(kib "$T/probe")" -ge 1024 ] ||
    skip "the test directory's filesystem cannot preallocate past EOF"
mkdir "$STORE/vm"

# 1. Through the mount.
mount_store
vmbio pwrite "$MNT/vm/disk.img" 0 $M p1 >/dev/null || fail "write"
fallocate -n -o $M -l $((32 * M)) "$MNT/vm/disk.img" || fail "fallocate -n through the mount"
assert_eq "through the mount: the size is unchanged" $M "$(stat -c %s "$MNT/vm/disk.img")"
unmount_store
before=$(kib "$STORE/vm/disk.img")
assert_num "... the backing file holds the preallocation" "$before" -ge $((33 * 1024))
assert_eq "... and no reservation record" "" "$(rec "$STORE/vm/disk.img")"
assert_eq "fsck -n: nothing to report" 0 "$(fsck_rc -n)" || cat "$T/fsck.out"
assert_eq "fsck: nothing to repair" 0 "$(fsck_rc)" || cat "$T/fsck.out"
assert_eq "... the preallocation is kept" "$before" "$(kib "$STORE/vm/disk.img")"

# 2. Directly in the store.
printf 'direct' >"$STORE/vm/direct.img"
fallocate -n -o 4096 -l $((16 * M)) "$STORE/vm/direct.img" || fail "fallocate -n in the store"
before=$(kib "$STORE/vm/direct.img")
rc=$(fsck_rc)
assert_eq "fsck of a file preallocated directly: only its missing map repaired (exit 1)" 1 "$rc"
# fsck prints one line per problem, a summary, and (after problems) where the daemons'
# messages are: count the problem lines only.
assert_eq "... one problem" 1 "$(grep -vc -e '^the daemons' -e 'files checked' "$T/fsck.out")" ||
    cat "$T/fsck.out"
assert_eq "... the preallocation is kept" "$before" "$(kib "$STORE/vm/direct.img")"

# 3. A daemon killed while it had space reserved ahead of a direct writer: the file
# stays open (the reservation is given back at the last close), then kill -9.
mount_store
F=$MNT/vm/big.img
B=$STORE/vm/big.img
exec 3>>"$F"
dd if=/dev/urandom of="$F" bs=1M count=8 conv=notrunc status=none || fail "dd into the mount"
data=$(kib "$B")
assert_num "while the writer's file is open, space is reserved past its end" "$(kib "$B")" -ge $((64 * 1024))
assert_match "... with a record of it on the backing file" '^[0-9]+$' "$(rec "$B")"
kill_daemon
exec 3>&-
assert_num "after kill -9 the reservation is still there" "$(kib "$B")" -ge $((64 * 1024))
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
assert_match "fsck -n reports it" '^vm/big.img: space reserved past the end of the file' "$(cat "$T/fsck.out")"
assert_num "... and leaves it" "$(kib "$B")" -ge $((64 * 1024))
assert_eq "fsck gives it back (exit 1)" 1 "$(fsck_rc)" || cat "$T/fsck.out"
assert_match "... and says so" '^vm/big.img: gave back space reserved past the end' "$(cat "$T/fsck.out")"
assert_num "... the backing file holds its 8 MiB of data (and extent blocks)" "$(kib "$B")" -le $((8 * 1024 + 64))
assert_eq "... the record is gone" "" "$(rec "$B")"
assert_eq "fsck -n afterwards: clean" 0 "$(fsck_rc -n)" || cat "$T/fsck.out"
assert_eq "... the other preallocations are still kept" "$(( $(kib "$STORE/vm/disk.img") >= 33 * 1024 ))" 1

# 4. The same crash, then the user preallocates past the reservation directly:
# fsck keeps everything and only drops the record.
mount_store
exec 3>>"$F"
dd if=/dev/urandom of="$F" bs=1M count=8 seek=8 conv=notrunc status=none || fail "dd into the mount"
end=$(rec "$B")
kill_daemon
exec 3>&-
fallocate -n -o $((end + 8 * M)) -l $M "$B" || fail "fallocate -n past the reservation"
before=$(kib "$B")
assert_eq "crash + a user's preallocation past the reservation: fsck exit 1" 1 "$(fsck_rc)" || cat "$T/fsck.out"
assert_match "... it keeps the space" '^vm/big.img: kept the space past the end of the file' "$(cat "$T/fsck.out")"
assert_eq "... all of it" "$before" "$(kib "$B")"
assert_eq "... the record is gone" "" "$(rec "$B")"

# 5. A crash, then a preallocation through the mount: the stale record must not
# make fsck take the user's space.
truncate -s $((16 * M)) "$B"
mount_store
exec 3>>"$F"
dd if=/dev/urandom of="$F" bs=1M count=8 seek=16 conv=notrunc status=none || fail "dd into the mount"
kill_daemon
exec 3>&-
mount_store
fallocate -n -o $((24 * M)) -l $((4 * M)) "$F" || fail "fallocate -n through the mount"
unmount_store
before=$(kib "$B")
assert_eq "after a crash, a preallocation through the mount clears the stale record" "" "$(rec "$B")"
fsck_rc >/dev/null
assert_eq "... fsck keeps the preallocation" "$before" "$(kib "$B")"
assert_eq "... and is clean afterwards" 0 "$(fsck_rc -n)" || cat "$T/fsck.out"

finish
