#!/bin/sh
# The top level of the mount: bundles are directories (mkdir/rmdir/rm -r/mv),
# non-directories there fail with EPERM, .vmbundlefs is invisible.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store

expect_errno "mkdir bundle b1" ok vmbio mkdir "$MNT/b1"
check "b1 is a directory in the mount" test -d "$MNT/b1"
check "b1 is a directory in the store" test -d "$STORE/b1"
assert_eq "ls lists the bundle" "b1" "$(ls "$MNT")"
assert_eq "ls -a shows only . .. and bundles (no .vmbundlefs)" ". .. b1" "$(ls -a "$MNT" | tr '\n' ' ' | sed 's/ $//')"
expect_errno "mkdir of an existing bundle -> EEXIST" EEXIST vmbio mkdir "$MNT/b1"
check "a bundle with spaces and UTF-8 in its name" mkdir "$MNT/My VM (ü).utm"
check "... is listed" test -d "$MNT/My VM (ü).utm"
expect_errno "bundle name of 256 bytes -> ENAMETOOLONG" ENAMETOOLONG vmbio mkdir "$MNT/$(printf 'n%.0s' $(seq 256))"
expect_errno "bundle name of 255 bytes is fine" ok vmbio mkdir "$MNT/$(printf 'n%.0s' $(seq 255))"

# Non-directories at the top level.
expect_errno "create a file at the top level -> EPERM" EPERM vmbio create "$MNT/file"
expect_errno "symlink at the top level -> EPERM" EPERM vmbio symlink b1 "$MNT/link"
expect_errno "fifo at the top level -> EPERM" EPERM vmbio mknod "$MNT/fifo" fifo
echo data >"$MNT/b1/f" || fail "write b1/f"
expect_errno "hard link into the top level -> EPERM" EPERM vmbio link "$MNT/b1/f" "$MNT/f"
expect_errno "rename a file to the top level -> EPERM" EPERM vmbio rename "$MNT/b1/f" "$MNT/f"
check "nothing was created at the top level of the store" \
    test ! -e "$STORE/file" -a ! -L "$STORE/link" -a ! -e "$STORE/fifo" -a ! -e "$STORE/f"
assert_eq "b1/f still there" data "$(cat "$MNT/b1/f")"

# .vmbundlefs
expect_errno ".vmbundlefs cannot be looked up" ENOENT vmbio stat "$MNT/.vmbundlefs"
expect_errno ".vmbundlefs/layout cannot be looked up" ENOENT vmbio stat "$MNT/.vmbundlefs/layout"
out=$(vmbio mkdir "$MNT/.vmbundlefs" 2>/dev/null)
check_fails "mkdir .vmbundlefs fails ($out)" test "$out" = ok
out=$(vmbio create "$MNT/.vmbundlefs" 2>/dev/null)
check_fails "create .vmbundlefs fails ($out)" test "$out" = ok
out=$(vmbio rename "$MNT/b1" "$MNT/.vmbundlefs" 2>/dev/null)
check_fails "rename a bundle over .vmbundlefs fails ($out)" test "$out" = ok
out=$(vmbio rename2 "$MNT/b1" "$MNT/.vmbundlefs" exchange 2>/dev/null)
check_fails "exchange a bundle with .vmbundlefs fails ($out)" test "$out" = ok
out=$(vmbio rename "$MNT/b1/f" "$MNT/.vmbundlefs" 2>/dev/null)
check_fails "rename a file over .vmbundlefs fails ($out)" test "$out" = ok
assert_eq "the store's layout file is intact" "vmbundlefs-store-layout 1" "$(cat "$STORE/.vmbundlefs/layout")"
check "b1 is intact" test -f "$MNT/b1/f"
check ".vmbundlefs in a bundle is an ordinary name" mkdir "$MNT/b1/.vmbundlefs"
rmdir "$MNT/b1/.vmbundlefs"

# mv / rmdir / rm -r of bundles
ino=$(st_ino "$MNT/b1/f")
check "mv renames a bundle" mv "$MNT/b1" "$MNT/b2"
check "old name gone" test ! -e "$MNT/b1" -a ! -e "$STORE/b1"
assert_eq "contents moved with it" data "$(cat "$MNT/b2/f")"
assert_eq "st_ino of the file unchanged by the bundle rename" "$ino" "$(st_ino "$MNT/b2/f")"
mkdir "$MNT/b3"
expect_errno "rename a bundle over an empty bundle" ok vmbio rename "$MNT/b2" "$MNT/b3"
assert_eq "... contents there" data "$(cat "$MNT/b3/f")"
mkdir "$MNT/b4"
expect_errno "rename2 noreplace of a bundle onto an existing one -> EEXIST" EEXIST vmbio rename2 "$MNT/b3" "$MNT/b4" noreplace
expect_errno "rmdir of a non-empty bundle -> ENOTEMPTY" ENOTEMPTY vmbio rmdir "$MNT/b3"
expect_errno "rmdir of an empty bundle" ok vmbio rmdir "$MNT/b4"
check "rmdir removed it from the store" test ! -e "$STORE/b4"
mkdir -p "$MNT/b3/Data/sub"
vmbio pwrite "$MNT/b3/Data/disk.img" 0 $((3 * 1048576)) p4 >/dev/null
ln -s disk.img "$MNT/b3/Data/link"
check "rm -r of a bundle with files, subdirectories and symlinks" rm -r "$MNT/b3"
check "rm -r: gone from the mount" test ! -e "$MNT/b3"
check "rm -r: gone from the store" test ! -e "$STORE/b3"
check "a bundle moved into another bundle becomes a subdirectory" mv "$MNT/My VM (ü).utm" "$MNT/$(printf 'n%.0s' $(seq 255))/"
assert_eq "remaining bundles" "$(printf 'n%.0s' $(seq 255))" "$(ls "$MNT")"
remount
assert_eq "after remount: bundles" "$(printf 'n%.0s' $(seq 255))" "$(ls "$MNT")"
NB=$MNT/$(printf 'n%.0s' $(seq 255))
echo hello >"$NB/file"

# Mount options: ro, readahead_kb, max_threads.
unmount_store
mount_store -o ro,readahead_kb=256,max_threads=4
expect_errno "-o ro: mkdir of a bundle -> EROFS" EROFS vmbio mkdir "$MNT/newbundle"
expect_errno "-o ro: create in a bundle -> EROFS" EROFS vmbio create "$NB/new"
expect_errno "-o ro: write to a file -> EROFS" EROFS vmbio pwrite "$NB/file" 0 10 p1
expect_errno "-o ro: unlink -> EROFS" EROFS vmbio unlink "$NB/file"
expect_errno "-o ro: setxattr -> EROFS" EROFS vmbio setxattr "$NB/file" user.x 1
assert_eq "-o ro: reads work" hello "$(cat "$NB/file")"
dev=$(mountpoint -d "$MNT")
if [ -r "/sys/class/bdi/$dev/read_ahead_kb" ]; then
    assert_eq "-o readahead_kb=256 sets the mount's readahead" 256 "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
fi
assert_match "the mount's read requests are capped at 1004 KiB (max_read), writes are not" \
    "max_read=1028096" "$(grep " $MNT " /proc/mounts)"
unmount_store
out=$("$VMB_BIN" mount -o max_read=65536 "$STORE" "$MNT" 2>&1)
rc=$?
assert_eq "-o max_read is refused: non-zero exit, nothing mounted" "1:$(is_mounted "$MNT" && echo mounted)" "$([ $rc -ne 0 ] && echo 1):"
assert_match "-o max_read: the message says why" "sets max_read itself" "$out"
mount_store
assert_eq "the daemon logged nothing for errors the syscalls already reported (ENOENT, EEXIST, EPERM, ...)" "" "$(grep -Ev "^vmbundlefs: (un)?mounted '" "$T/log" 2>/dev/null | head -n 5)"
unmount_store
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n is clean afterwards (no stale sidecars): $(head -c 300 "$T/fsck.out")" 0 $rc
finish
