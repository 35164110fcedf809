#!/bin/sh
# The read-only view of snapshots, MNT/.snapshots/BUNDLE@NAME (vfs_snapview.c):
# listed at the root only, the bundle as it was (contents, holes, modes, owners,
# times, symlinks, user.* xattrs), unchanged by later writes, every change EROFS,
# readable by the tools a backup uses; gone once the snapshot is deleted.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v setfattr >/dev/null || skip "attr is not installed"
command -v setpriv >/dev/null || skip "setpriv is not installed (util-linux)"
M=$((1024 * 1024))
chmod 755 "$T" "$STORE"
mount_store -o allow_other

mkdir -p "$MNT/b/dir/sub"
echo config >"$MNT/b/config.json"
truncate -s 64M "$MNT/b/disk.img"
vmbio pwrite "$MNT/b/disk.img" $((8 * M)) 70000 7 >/dev/null
vmbio pwrite "$MNT/b/disk.img" $((40 * M)) 4096 9 >/dev/null
echo secret >"$MNT/b/dir/sub/key" && chmod 600 "$MNT/b/dir/sub/key"
ln -s ../config.json "$MNT/b/dir/link"
setfattr -n user.tag -v hello "$MNT/b/config.json"
touch -d '2020-01-02 03:04:05.678' "$MNT/b/dir/sub"
assert_eq "no snapshot yet: .snapshots is not listed" ". .. b" "$(ls -a "$MNT" | tr '\n' ' ' | sed 's/ $//')"
check "... but can be looked up (empty)" test -z "$(ls -A "$MNT/.snapshots")"

# The snapshot is made by a test helper (layers copied, manifest written) as the
# store's snapshot command would make it.
"$VMB_TESTBIN/helpers/mksnap" "$STORE" b s1 || fail "mksnap"
S=$MNT/.snapshots/b@s1
assert_eq ".snapshots is listed at the root now" ". .. .snapshots b" "$(ls -a "$MNT" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "... holding b@s1" "b@s1" "$(ls "$MNT/.snapshots")"
expect_errno "there is no .snapshots in a bundle" ENOENT vmbio stat "$MNT/b/.snapshots"
check "the snapshot has the bundle's tree and contents" diff -r "$MNT/b" "$S"
for p in config.json disk.img dir dir/sub dir/sub/key dir/link; do
    assert_eq "$p: same type, mode, owner, size, mtime" \
        "$(stat -c '%F %a %u %g %s %.9Y' "$MNT/b/$p")" "$(stat -c '%F %a %u %g %s %.9Y' "$S/$p")"
done
assert_eq "the symlink's target" "../config.json" "$(readlink "$S/dir/link")"
assert_eq "user.* xattrs are kept" hello "$(getfattr --only-values -n user.tag "$S/config.json" 2>/dev/null)"
assert_eq "st_blocks of the sparse image as the live file's" \
    "$(st_blocks "$MNT/b/disk.img")" "$(st_blocks "$S/disk.img")"
assert_eq "SEEK_DATA finds the first data" "$(vmbio seek "$MNT/b/disk.img" 0 data)" "$(vmbio seek "$S/disk.img" 0 data)"
assert_eq "SEEK_HOLE after it" "$(vmbio seek "$MNT/b/disk.img" $((8 * M)) hole)" "$(vmbio seek "$S/disk.img" $((8 * M)) hole)"
assert_match "SEEK_DATA past the last data: ENXIO" "No such device or address" "$(vmbio seek "$S/disk.img" $((48 * M)) data 2>&1)"
cp --sparse=always "$S/disk.img" "$T/copy.img"
check "a sparse copy out of the snapshot is the same" cmp "$T/copy.img" "$MNT/b/disk.img"
assert_num "... and stays sparse" "$(st_blocks "$T/copy.img")" -lt 1024
check "tar reads the snapshot" sh -c "tar -cf - -C '$MNT/.snapshots' b@s1 | tar -tf - | grep -q 'b@s1/dir/sub/key'"

# Later changes do not show in it.
echo changed >"$MNT/b/config.json"
vmbio pwrite "$MNT/b/disk.img" $((8 * M)) 4096 3 >/dev/null
rm "$MNT/b/dir/sub/key"
assert_eq "a rewritten file: the snapshot keeps the old content" config "$(cat "$S/config.json")"
check "an image written after: the snapshot's is unchanged" cmp "$S/disk.img" "$T/copy.img"
assert_eq "a removed file is still in the snapshot" secret "$(cat "$S/dir/sub/key")"

# Every change fails with EROFS.
expect_errno "write" EROFS vmbio pwrite "$S/config.json" 0 1 1
expect_errno "create" EROFS vmbio create "$S/new"
expect_errno "mkdir" EROFS vmbio mkdir "$S/newdir"
expect_errno "unlink" EROFS vmbio unlink "$S/config.json"
expect_errno "rmdir" EROFS vmbio rmdir "$S/dir/sub"
expect_errno "rename inside" EROFS vmbio rename "$S/config.json" "$S/c2"
expect_errno "rename out" EROFS vmbio rename "$S/config.json" "$MNT/b/c2"
expect_errno "truncate" EROFS vmbio truncate "$S/disk.img" 0
assert_match "chmod: EROFS" "Read-only file system" "$(chmod 777 "$S/config.json" 2>&1)"
expect_errno "symlink" EROFS vmbio symlink x "$S/l2"
expect_errno "mkdir in .snapshots" EROFS vmbio mkdir "$MNT/.snapshots/x@y"
expect_errno "rmdir .snapshots" EROFS vmbio rmdir "$MNT/.snapshots"
expect_errno "rename a bundle over .snapshots" EROFS vmbio rename "$MNT/b" "$MNT/.snapshots"
expect_errno "mkdir .snapshots at the root: it exists" EEXIST vmbio mkdir "$MNT/.snapshots"
out=$(setfattr -n user.x -v 1 "$S/config.json" 2>&1)
assert_match "setfattr: EROFS" "Read-only file system" "$out"
check "the store is untouched by all that" test ! -e "$STORE/b/new" -a -e "$STORE/b/config.json"

# Permissions are the recorded ones.
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
check "another user reads what the bundle let them" $NOBODY cat "$S/config.json"
check_fails "... but not root's 0600 file" $NOBODY cat "$S/dir/sub/key"

# Deleted: gone from the view.
exec 7<"$S/disk.img"   # open while deleted
rm "$STORE/.vmbundlefs/snapshots/b@s1"
sleep 1.2   # the kernel's cached entry times out
expect_errno "a deleted snapshot cannot be looked up" ENOENT vmbio stat "$MNT/.snapshots/b@s1"
check "... and is not listed" test -z "$(ls -A "$MNT/.snapshots")"
check "a file of it open before stays readable" cmp /dev/fd/7 "$T/copy.img"
exec 7<&-
# Made again under the same name while a file of the old one is still open (so
# the view keeps the old one's manifest), its manifest with the old one's inode
# number (the file system gives a freed number again at once): the view shows
# the new one, not what it kept.
SD=$STORE/.vmbundlefs/snapshots
echo again >"$MNT/b/config.json"
"$VMB_TESTBIN/helpers/mksnap" "$STORE" b s1 || fail "mksnap b s1 again"
sleep 1.2
assert_eq "a snapshot made again under a deleted one's name shows its own files" again \
    "$(cat "$S/config.json")"
exec 7<"$S/config.json"
echo third >"$MNT/b/config.json"
"$VMB_TESTBIN/helpers/mksnap" "$STORE" b s3 || fail "mksnap b s3"
ino_old=$(stat -c %i "$SD/b@s1")
rm "$SD/b@s1" && cp "$SD/b@s3" "$SD/.b@s1.tmp" && mv "$SD/.b@s1.tmp" "$SD/b@s1" ||
    fail "cannot make b@s1 again"
say "# b@s1's manifest inode before: $ino_old, now: $(stat -c %i "$SD/b@s1")"
sleep 1.2
assert_eq "... and again, its manifest on the freed inode: its own files" third \
    "$(cat "$S/config.json")"
check "a file of the deleted one open before still reads it" \
    test "$(cat /dev/fd/7)" = again
exec 7<&-
rm "$SD/b@s1" "$SD/b@s3"
sleep 1.2
assert_eq ".snapshots is not listed at the root any more" ". .. b" "$(ls -a "$MNT" | tr '\n' ' ' | sed 's/ $//')"
finish
