#!/bin/sh
# mount-coherence.sh: changes made from another mount of the same store, or directly in
# the store, while a file is open (or cached) through a mount: the mount finds them,
# rebuilds its map instead of reading zeros, never saves a map that calls the new data
# zeros, and a new open reads exactly the backing file's bytes (issue 9, section 1).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
A=$MNT
B=$T/mnt2
mkdir "$B"

# The second mount (B) of the same store, with its own log and state files.
mount_b() {
    rm -f "$T/daemon2.pid" "$T/daemon2.rc"
    ( sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon2.pid" "$VMB_BIN" mount -f --log="$T/log2" "$STORE" "$B"
      echo $? >"$T/daemon2.rc" ) </dev/null >>"$T/daemon2.out" 2>&1 &
    wait_for 30 mountpoint -q "$B" && return 0
    cat "$T/daemon2.out" "$T/log2" 2>/dev/null
    fail "the second mount of the store did not appear"
}
unmount_b() {
    fusermount3 -u "$B" || fusermount3 -uz "$B"
    wait_for 30 test -e "$T/daemon2.rc"
    assert_eq "the second daemon exits with status 0" 0 "$(cat "$T/daemon2.rc" 2>/dev/null)"
}
on_exit 'exec 7<&- 8<&- 9<&-; mountpoint -q "$B" && fusermount3 -uz "$B"; [ -s "$T/daemon2.pid" ] && kill -9 "$(cat "$T/daemon2.pid")" 2>/dev/null'
mount_b

M=$((1 << 20))
X=88   # 'X'
Y=89   # 'Y'
fsck_clean() {
    local out rc
    out=$("$VMB_BIN" fsck -n "$STORE" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then ok "$1"; else notok "$1" "fsck -n exit $rc:" "$out"; fi
}

# ---- 1. the issue's scenario: B holds the file open, A writes and closes ----
mkdir "$A/x"
truncate -s 64M "$A/x/f"
exec 7<"$B/x/f"
assert_eq "B: the file has no data before" ENXIO "$(vmbio seek fd:7 0 data 2>/dev/null)"
check "A writes 1 MiB of X at 32 MiB, fsyncs, closes" vmbio pwrite "$A/x/f" $((32 * M)) $M $X sync
assert_eq "B's open descriptor: SEEK_DATA finds the new data" $((32 * M)) "$(vmbio seek fd:7 0 data)"
check "B's open descriptor reads X at 32 MiB" vmbio verify fd:7 $((32 * M)) $M $X
check "a new open on B reads X at 32 MiB" vmbio verify "$B/x/f" $((32 * M)) $M $X
assert_eq "a new open on B: SEEK_DATA finds it" $((32 * M)) "$(vmbio seek "$B/x/f" 0 data)"
assert_eq "B: st_blocks counts the new data" 2048 "$(st_blocks "$B/x/f")"
exec 7<&-

# ---- 2. a writer directly in the store, the file open through B ----
truncate -s 64M "$B/x/g"
exec 7<"$B/x/g"
check "B: g reads as zeros before (away from where it changes)" vmbio verify fd:7 $((40 * M)) $M 0
check "a direct writer writes Y at 8 MiB of the backing file" vmbio pwrite "$STORE/x/g" $((8 * M)) $M $Y sync
assert_eq "B's open descriptor: SEEK_DATA finds the direct write" $((8 * M)) "$(vmbio seek fd:7 0 data)"
check "B's open descriptor reads Y at 8 MiB" vmbio verify fd:7 $((8 * M)) $M $Y
check "a new open on B reads Y" vmbio verify "$B/x/g" $((8 * M)) $M $Y
exec 7<&-
# ... and with the file closed everywhere
check "a direct writer writes X at 16 MiB of the closed file" vmbio pwrite "$STORE/x/g" $((16 * M)) $M $X sync
check "an open on B reads X at 16 MiB" vmbio verify "$B/x/g" $((16 * M)) $M $X
check "an open on A reads it too" vmbio verify "$A/x/g" $((16 * M)) $M $X

# ---- 3. keep_cache pages present on B ----
truncate -s 8M "$A/x/h"
vmbio pwrite "$A/x/h" 0 $((8 * M)) 1 sync >/dev/null
exec 8<"$B/x/h"
check "B reads h whole (its pages are now cached)" vmbio verify fd:8 0 $((8 * M)) 1
check "A overwrites 1 MiB at 2 MiB with X" vmbio pwrite "$A/x/h" $((2 * M)) $M $X sync
check "a new open on B reads the new bytes" vmbio verify "$B/x/h" $((2 * M)) $M $X
check "a direct writer overwrites 1 MiB at 4 MiB with Y" vmbio pwrite "$STORE/x/h" $((4 * M)) $M $Y sync
check "a new open on B reads the direct write" vmbio verify "$B/x/h" $((4 * M)) $M $Y
check "... and the rest is unchanged" vmbio verify "$B/x/h" 0 $((2 * M)) 1
sleep 1.2   # the kernel's attribute timeout: it sees the new mtime, drops its pages
check "B's descriptor that cached the old pages reads the new bytes after the attribute timeout" \
    sh -c "'$VMBIO' verify fd:8 $((2 * M)) $M $X && '$VMBIO' verify fd:8 $((4 * M)) $M $Y"
exec 8<&-
# cached on B, closed there, then changed from A
check "B reads h whole again" vmbio verify "$B/x/h" 0 $((2 * M)) 1
check "A overwrites 1 MiB at 0 with Y" vmbio pwrite "$A/x/h" 0 $M $Y sync
check "a new open on B after its last close reads the new bytes" vmbio verify "$B/x/h" 0 $M $Y

# ---- 4. truncate, extension and punch from outside ----
truncate -s 32M "$A/x/t"
vmbio pwrite "$A/x/t" $((4 * M)) $M $X sync >/dev/null
exec 9<"$B/x/t"
check "B: t holds X at 4 MiB" vmbio verify fd:9 $((4 * M)) $M $X
check "directly: extend t to 96 MiB and write Y at 80 MiB" sh -c "truncate -s 96M '$STORE/x/t' && '$VMBIO' pwrite '$STORE/x/t' $((80 * M)) $M $Y sync"
check "a new open on B reads Y at 80 MiB" vmbio verify "$B/x/t" $((80 * M)) $M $Y
assert_eq "B: the size is the new one" $((96 * M)) "$(st_size "$B/x/t")"
assert_eq "B's open descriptor: SEEK_DATA from 6 MiB finds 80 MiB" $((80 * M)) "$(vmbio seek fd:9 $((6 * M)) data)"
check "directly: punch the X at 4 MiB" fallocate -p -o $((4 * M)) -l $M "$STORE/x/t"
check "a new open on B reads zeros at 4 MiB" vmbio verify "$B/x/t" $((4 * M)) $M 0
assert_eq "B's open descriptor: SEEK_DATA from 0 skips the punched range" $((80 * M)) "$(vmbio seek fd:9 0 data)"
check "from A: truncate t to 5 MiB" truncate -s 5M "$A/x/t"
assert_eq "a new open on B: SEEK_DATA from 0 finds nothing" ENXIO "$(vmbio seek "$B/x/t" 0 data 2>/dev/null)"
assert_eq "B: the size is 5 MiB" $((5 * M)) "$(st_size "$B/x/t")"
exec 9<&-

# ---- 5. cut short directly while open on A, its own writes just made ----
# (the daemon took the stamp after its queued writes as its own: it saved its map,
# which called the cut-off megabyte data, under the new size, and every open after
# that failed with EIO)
exec 8<>"$A/x/q"
check "A: write 1 MiB of X through an open descriptor" vmbio pwrite fd:8 0 $M $X
check "directly: truncate q to 4 KiB" truncate -s 4096 "$STORE/x/q"
exec 8>&-
check "a new open on A after the close reads it (no EIO)" vmbio verify "$A/x/q" 0 4096 $X
assert_eq "... 4 KiB of it" 4096 "$(st_size "$A/x/q")"
assert_match "A's log says q changed outside the mount" "'x/q' was changed outside this mount" "$(cat "$T/log")"

# ---- 6. a map rebuilt at an open, with the kernel's attributes still cached ----
# (another mount saved its own view of the map meanwhile, or none yet: the open
# rebuilds it from the backing file, which counts preallocated blocks otherwise;
# the kernel kept the st_blocks it was given before, for its attribute timeout)
check "A: write 8 KiB and preallocate 64 KiB of p" sh -c "'$VMBIO' pwrite '$A/x/p' 0 8192 $X && '$VMBIO' falloc '$A/x/p' 0 $M 65536"
sleep 0.3   # the close's map saved
b1=$(vmbio blocks "$A/x/p")
rm -f "$(sidecar_of "$STORE/x/p")" "$(sidecar_of "$STORE/x/p" | sed 's/\.map$/.jnl/')"
exec 7<"$A/x/p"
b2=$(vmbio blocks fd:7)
m2=$(vmbio mapsum fd:7)
exec 7<&-
assert_eq "an open that rebuilt p's map: st_blocks agrees with its data extents" "$m2" "$((b2 * 512))"
check "... (the rebuild counted the preallocation otherwise: $b1 blocks before)" test "$((b1 * 512))" != "$m2"

# ---- 7. names removed from outside while the kernel caches them ----
# (an open of a file whose last name went elsewhere reads what the name holds now
# or fails as a missing file, never the removed file's bytes; one whose name went
# through this mount is still reopened through /proc/PID/fd)
check "A: write r and cache its entry" sh -c "'$VMBIO' pwrite '$A/x/r' 0 4096 $X && '$VMBIO' verify '$A/x/r' 0 4096 $X"
check "B: remove r" rm "$B/x/r"
expect_errno "at once on A: an open of r finds no file" ENOENT vmbio read "$A/x/r"
check "A: write r again" vmbio pwrite "$A/x/r" 0 4096 $X
check "... and cache its entry" vmbio verify "$A/x/r" 0 4096 $X
check "B: rename a new file over r" sh -c "'$VMBIO' pwrite '$B/x/r2' 0 4096 $Y && mv '$B/x/r2' '$B/x/r'"
check "at once on A: r reads the new file" vmbio verify "$A/x/r" 0 4096 $Y
exec 7<"$A/x/r"
check "A: remove r through A while it is open" rm "$A/x/r"
check "... it is still reopened through /proc/self/fd" sh -c "exec 7<&-; '$VMBIO' verify /proc/$$/fd/7 0 4096 $Y"
exec 7<&-

# ---- every map saved describes the backing file: after remounting both ----
unmount_b
unmount_store
fsck_clean "fsck -n finds every saved map right"
mount_store
check "after the remount f reads X at 32 MiB" vmbio verify "$A/x/f" $((32 * M)) $M $X
assert_eq "... and SEEK_DATA finds it" $((32 * M)) "$(vmbio seek "$A/x/f" 0 data)"
check "g reads Y at 8 MiB and X at 16 MiB" sh -c "'$VMBIO' verify '$A/x/g' $((8 * M)) $M $Y && '$VMBIO' verify '$A/x/g' $((16 * M)) $M $X"
check "h holds every change" sh -c "'$VMBIO' verify '$A/x/h' 0 $M $Y && '$VMBIO' verify '$A/x/h' $((2 * M)) $M $X && '$VMBIO' verify '$A/x/h' $((4 * M)) $M $Y"
check "every file's holes read as zeros and its data lies in data extents" sh -c "for f in f g h t; do '$VMBIO' mapcheck '$A/x/'\$f || exit 1; done"
unmount_store
fsck_clean "fsck -n is still clean"

# ---- a store whose filesystem cannot show a change is refused at mount time ----
if [ "$(id -u)" = 0 ] && command -v mke2fs >/dev/null 2>&1 && truncate -s 64M "$T/coarse.img" &&
   mke2fs -q -F -t ext4 -I 128 "$T/coarse.img" >/dev/null 2>&1 && mkdir "$T/coarse" "$T/cmnt" &&
   mount -o loop "$T/coarse.img" "$T/coarse" 2>/dev/null; then
    on_exit 'mountpoint -q "$T/cmnt" && fusermount3 -uz "$T/cmnt"; umount "$T/coarse" 2>/dev/null'
    "$VMB_BIN" init "$T/coarse/s" >/dev/null 2>&1 || notok "init a store on ext4 with 128-byte inodes"
    out=$(timeout 20 "$VMB_BIN" mount -f "$T/coarse/s" "$T/cmnt" 2>&1); rc=$?
    assert_num "a store on a filesystem with whole-second times is refused (exit $rc)" "$rc" -ne 0
    assert_match "... saying why" "keeps modification times in whole seconds" "$out"
    check "... and nothing was mounted" sh -c "! mountpoint -q '$T/cmnt'"
    umount "$T/coarse"
else
    say "# cannot make a loop-mounted ext4 with 128-byte inodes here: refusal not checked"
fi
finish
