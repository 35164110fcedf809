#!/bin/sh
# POSIX basics inside a bundle.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
B=$MNT/vm
mkdir "$B" || fail "mkdir bundle"
cd "$B" || fail "cd $B"
M=1048576

# ---- create / read / write / append / truncate ----
printf 'hello\n' >f
assert_eq "create + write + read" hello "$(cat f)"
printf 'world\n' >>f
assert_eq "append" "hello
world" "$(cat f)"
assert_eq "size after append" 12 "$(st_size f)"
expect_errno "O_CREAT|O_EXCL on an existing file -> EEXIST" EEXIST vmbio create f
check "truncate (ftruncate) shrinks" truncate -s 3 f
assert_eq "content after shrink" hel "$(cat f)"
check "truncate (ftruncate) grows" truncate -s 10000 f
assert_eq "size after grow" 10000 "$(st_size f)"
check "grown part reads as zeros" vmbio verify f 3 9997 0
expect_errno "truncate(2) by path" ok vmbio truncate f 5000
assert_eq "size after truncate(2)" 5000 "$(st_size f)"
check "write in the middle" vmbio pwrite f 100 50 p2
check "... reads back" vmbio verify f 100 50 p2
check "... neighbours intact" vmbio verify f 3 97 0
check "8 MiB write" vmbio pwrite big 0 $((8 * M)) p3
check "8 MiB read back" vmbio verify big 0 $((8 * M)) p3
check "overwrite across a block boundary" vmbio pwrite big $((4096 - 10)) 20 p9
check "... reads back" vmbio verify big $((4096 - 10)) 20 p9
check "... neighbours intact" vmbio verify big 0 $((4096 - 10)) p3
check "write at an offset far past EOF" vmbio pwrite big $((100 * M + 7)) 10 p4
assert_eq "size after writing past EOF" $((100 * M + 17)) "$(st_size big)"
check "gap reads as zeros" vmbio verify big $((8 * M)) $((92 * M + 7)) 0
check "fsync" vmbio fsync big
check "cp to a local file, cmp" sh -c "cp big \"$T/big.copy\" && cmp big \"$T/big.copy\" && rm \"$T/big.copy\""
check "open O_TRUNC empties a file" sh -c ': > big'
assert_eq "size after O_TRUNC" 0 "$(st_size big)"

# ---- shared mmap ----
truncate -s $((4 * M)) mm
check "write through a shared mapping" vmbio mmapw mm $((M + 100)) 10000 p11
check "... reads back with read(2)" vmbio verify mm $((M + 100)) 10000 p11
check "... rest still zero" vmbio verify mm 0 $((M + 100)) 0
assert_eq "... map" "$M 12288" "$(vmbio map mm)"
check "mmap read sees a pwrite" sh -c "$VMBIO pwrite mm 5000 100 p12 >/dev/null && $VMBIO mmapw mm 8192 10 p13 >/dev/null && $VMBIO verify mm 5000 100 p12"

# ---- across bundles ----
mkdir "$MNT/other"
vmbio pwrite xb 0 $((2 * M)) p14 >/dev/null
truncate -s $((64 * M)) xb
inox=$(st_ino xb)
check "rename a file into another bundle" mv xb "$MNT/other/xb"
assert_eq "... same inode" "$inox" "$(st_ino "$MNT/other/xb")"
check "... content" vmbio verify "$MNT/other/xb" 0 $((2 * M)) p14
assert_eq "... map" "0 $((2 * M))" "$(vmbio map "$MNT/other/xb")"
# across bundles, as across subvolumes: EXDEV (a file in two bundles would be
# protected by neither while a VM runs on it: vmbundlefs(5) LOCKS AND BUNDLES IN USE)
expect_errno "hard link across bundles -> EXDEV" EXDEV vmbio link "$MNT/other/xb" "$B/xb-link"
check "... no name was made" test ! -e "$B/xb-link"
check "cp -a across bundles copies instead" cp -a "$MNT/other/xb" "$B/xb-copy"
check "... the copy's content" vmbio verify "$B/xb-copy" 0 $((2 * M)) p14
check "hard link within a bundle" ln "$MNT/other/xb" "$MNT/other/xb-link"
assert_eq "... st_nlink" 2 "$(stat -c %h "$MNT/other/xb")"
rm "$MNT/other/xb"
check "... content through the remaining name" vmbio verify "$MNT/other/xb-link" 0 $((2 * M)) p14
rm "$MNT/other/xb-link" "$B/xb-copy"
rmdir "$MNT/other"

# ---- directories ----
check "mkdir" mkdir d
check "nested mkdir" mkdir d/e
expect_errno "rmdir of a non-empty directory -> ENOTEMPTY" ENOTEMPTY vmbio rmdir d
expect_errno "rmdir of a file -> ENOTDIR" ENOTDIR vmbio rmdir f
expect_errno "unlink of a directory -> EISDIR" EISDIR vmbio unlink d
expect_errno "rmdir nested" ok vmbio rmdir d/e
expect_errno "rmdir" ok vmbio rmdir d
check "gone" test ! -e d
mkdir many
for i in $(seq 1 600); do : >"many/file-$i-$(printf 'x%.0s' $(seq 1 $((i % 50))))"; done
assert_eq "readdir of 600 entries" 600 "$(ls many | wc -l)"
assert_eq "readdir sees each name once" 600 "$(ls many | sort -u | wc -l)"
check "rm -r of the directory" rm -r many

# ---- symlinks ----
check "symlink" ln -s f lnk
assert_eq "readlink" f "$(readlink lnk)"
check "read through the symlink" cmp f lnk
check "symlink to an absolute, dangling target" ln -s /nonexistent/target dangling
assert_eq "readlink dangling" /nonexistent/target "$(readlink dangling)"
check "lstat of a symlink says symlink" test -L dangling
long=$(printf 'abcdefghij%.0s' $(seq 1 100))
check "symlink with a 1000-byte target" ln -s "$long" longlink
assert_eq "readlink of the 1000-byte target" "$long" "$(readlink longlink)"

# ---- hard links ----
printf 'linked\n' >h1
check "link" ln h1 h2
assert_eq "st_nlink is 2" 2 "$(stat -c %h h1)"
assert_eq "same st_ino" "$(st_ino h1)" "$(st_ino h2)"
echo more >>h2
assert_eq "write through one name seen through the other" "linked
more" "$(cat h1)"
check "unlink one name" rm h2
assert_eq "st_nlink back to 1" 1 "$(stat -c %h h1)"
expect_errno "link to an existing name -> EEXIST" EEXIST vmbio link h1 f
expect_errno "link of a directory -> EPERM" EPERM vmbio link "$B" "$B/dirlink"

# ---- unlink of an open file ----
printf 'still here\n' >open1
exec 7<open1
check "unlink an open file" rm open1
check "gone from the directory" test ! -e open1
assert_eq "still readable through the open descriptor" "still here" "$(cat <&7)"
exec 7<&-
vmbio pwrite openw 0 $M p5 >/dev/null
exec 8<>openw
rm openw
assert_eq "unlinked open file: fstat size" $M "$(stat -L -c %s /dev/fd/8)"
check "unlinked open file: write through the descriptor" sh -c 'printf zz >&8'
exec 8>&-

# ---- rename ----
echo A >ra
echo B >rb
inoa=$(st_ino ra)
check "rename over an existing file" mv ra rb
assert_eq "target has the source's content" A "$(cat rb)"
assert_eq "target has the source's inode" "$inoa" "$(st_ino rb)"
check "source gone" test ! -e ra
echo C >rc
expect_errno "RENAME_NOREPLACE onto an existing name -> EEXIST" EEXIST vmbio rename2 rc rb noreplace
assert_eq "... target unchanged" A "$(cat rb)"
expect_errno "RENAME_NOREPLACE to a new name" ok vmbio rename2 rc rd noreplace
assert_eq "... moved" C "$(cat rd)"
inob=$(st_ino rb)
inod=$(st_ino rd)
expect_errno "RENAME_EXCHANGE" ok vmbio rename2 rb rd exchange
assert_eq "exchange swapped contents (1)" C "$(cat rb)"
assert_eq "exchange swapped contents (2)" A "$(cat rd)"
assert_eq "exchange swapped inodes" "$inod $inob" "$(st_ino rb) $(st_ino rd)"
mkdir rdir
expect_errno "RENAME_EXCHANGE of a file and a directory" ok vmbio rename2 rb rdir exchange
check "... directory now at the file's name" test -d rb -a -f rdir
expect_errno "RENAME_EXCHANGE with a missing name -> ENOENT" ENOENT vmbio rename2 rdir nonexistent exchange
expect_errno "rename a directory over a non-empty directory -> ENOTEMPTY" ENOTEMPTY sh -c "mkdir -p x1 x2/y && $VMBIO rename x1 x2"
expect_errno "rename a directory into itself -> EINVAL" EINVAL vmbio rename x2 x2/y/z
check "rename into a subdirectory" mv rd x2/y/moved
assert_eq "... content" A "$(cat x2/y/moved)"

# ---- attributes ----
check "chmod 640" chmod 640 f
assert_eq "mode 640" 640 "$(stat -c %a f)"
check "chmod 4755" chmod 4755 f
assert_eq "mode 4755" 4755 "$(stat -c %a f)"
check "chmod of a directory" chmod 700 x1
assert_eq "directory mode 700" 700 "$(stat -c %a x1)"
if [ "$(id -u)" = 0 ]; then
    check "chown 1234:5678" chown 1234:5678 f
    assert_eq "owner" 1234:5678 "$(stat -c %u:%g f)"
else
    say "# not root: chown to other users not tested"
fi
check "touch -d sets mtime and atime" touch -d '2001-02-03 04:05:06.123456789 UTC' f
assert_eq "mtime" 981173106 "$(stat -c %Y f)"
assert_eq "mtime nanoseconds" "2001-02-03 04:05:06.123456789 +0000" "$(TZ=UTC stat -c %y f)"
assert_eq "atime" 981173106 "$(stat -c %X f)"
check "touch -m -d only mtime" touch -m -d '@1000000000' f
assert_eq "mtime after touch -m" 1000000000 "$(stat -c %Y f)"
assert_eq "atime kept" 981173106 "$(stat -c %X f)"
check "utimens on a symlink itself (touch -h)" touch -h -d '@1200000000' lnk
assert_eq "symlink's own mtime" 1200000000 "$(stat -c %Y lnk)"
before=$(stat -c %Y h1)
sleep 1.1
echo x >>h1
check "write updates mtime" test "$(stat -c %Y h1)" -gt "$before"

# ---- statfs ----
check "df on the mount" df -P "$MNT"
read -r blocks avail bsize <<<"$(stat -f -c '%b %a %S' "$MNT")"
assert_num "statfs: total blocks > 0" "$blocks" -gt 0
assert_num "statfs: available <= total" "$avail" -le "$blocks"
assert_num "statfs: block size > 0" "$bsize" -gt 0

# ---- xattrs ----
if command -v setfattr >/dev/null 2>&1 && command -v getfattr >/dev/null 2>&1; then
    echo x >xa
    check "setfattr user.foo" setfattr -n user.foo -v bar xa
    assert_eq "getfattr user.foo" bar "$(getfattr --only-values -n user.foo xa 2>/dev/null)"
    check "setfattr user.com.apple.quarantine" setfattr -n user.com.apple.quarantine -v '0081;5f2c1b2a;Safari;' xa
    assert_eq "getfattr user.com.apple.quarantine" '0081;5f2c1b2a;Safari;' \
        "$(getfattr --only-values -n user.com.apple.quarantine xa 2>/dev/null)"
    check "binary xattr value" setfattr -n user.bin -v 0x00ff00ff7f xa
    assert_eq "binary value reads back" '0x00ff00ff7f' "$(getfattr -e hex -n user.bin xa 2>/dev/null | sed -n 's/^user.bin=//p')"
    assert_eq "list xattrs" "user.bin user.com.apple.quarantine user.foo" \
        "$(getfattr -d -m - xa 2>/dev/null | sed -n 's/=.*//p' | sort | tr '\n' ' ' | sed 's/ $//')"
    check "setfattr -x user.foo" setfattr -x user.foo xa
    expect_errno "removed xattr -> ENODATA" ENODATA vmbio getxattr xa user.foo
    expect_errno "remove a missing xattr -> ENODATA" ENODATA vmbio removexattr xa user.foo
    assert_eq "list after remove" "user.bin user.com.apple.quarantine" "$(vmbio listxattr xa | sort | tr '\n' ' ' | sed 's/ $//')"
    # (as non-root the kernel itself refuses trusted.* with EPERM)
    [ "$(id -u)" = 0 ] && expect_errno "trusted.x -> EOPNOTSUPP" EOPNOTSUPP vmbio setxattr xa trusted.x 1
    expect_errno "security.x -> EOPNOTSUPP" EOPNOTSUPP vmbio setxattr xa security.x 1
    expect_errno "name without namespace -> EOPNOTSUPP" EOPNOTSUPP vmbio setxattr xa plainname 1
    check "xattr on a directory" setfattr -n user.dir -v d x1
    assert_eq "directory xattr reads back" d "$(getfattr --only-values -n user.dir x1 2>/dev/null)"
    check "xattr on the bundle directory" setfattr -n user.bundle -v b "$B"
    assert_eq "bundle xattr reads back" b "$(getfattr --only-values -n user.bundle "$B" 2>/dev/null)"
    big=$(head -c 3000 /dev/zero | tr '\0' v)
    check "3000-byte xattr value" setfattr -n user.big -v "$big" xa
    assert_eq "3000-byte value reads back" "$big" "$(getfattr --only-values -n user.big xa 2>/dev/null)"
else
    say "# setfattr/getfattr (package attr) missing: using vmbio for xattrs"
fi
expect_errno "vmbio setxattr user.v" ok vmbio setxattr f user.v value
expect_errno "vmbio getxattr user.v" value vmbio getxattr f user.v

# ---- names ----
n255=$(printf 'a%.0s' $(seq 255))
n256=$(printf 'a%.0s' $(seq 256))
expect_errno "create a 255-byte name" ok vmbio create "$n255"
expect_errno "create a 256-byte name -> ENAMETOOLONG" ENAMETOOLONG vmbio create "$n256"
expect_errno "mkdir a 256-byte name -> ENAMETOOLONG" ENAMETOOLONG vmbio mkdir "$n256"
expect_errno "symlink named with 256 bytes -> ENAMETOOLONG" ENAMETOOLONG vmbio symlink f "$n256"
expect_errno "rename to a 256-byte name -> ENAMETOOLONG" ENAMETOOLONG vmbio rename "$n255" "$n256"
expect_errno "lookup of a 256-byte name -> ENAMETOOLONG" ENAMETOOLONG vmbio stat "$n256"
check "UTF-8 name" sh -c 'echo u > "Ünïcödé ✓.txt" && test -f "Ünïcödé ✓.txt"'

# ---- special files ----
# (FIFOs and sockets are made; tests/mount-special.sh uses them)
expect_errno "mknod of a FIFO in a bundle" ok vmbio mknod fifo fifo
expect_errno "mknod of a socket node in a bundle" ok vmbio mknod sock sock
expect_errno "device node -> EPERM" EPERM vmbio mknod chr chr
rm -f fifo sock

# ---- a UTM-like nested bundle ----
U=$MNT/Linux.utm
check "mkdir -p Linux.utm/Data" mkdir -p "$U/Data"
printf '<plist/>\n' >"$U/config.plist"
check "disk image in Data/" vmbio pwrite "$U/Data/disk.img" 0 $((2 * M)) p6
check "truncate it to 1 GiB" truncate -s 1G "$U/Data/disk.img"
check "efi vars" vmbio pwrite "$U/Data/efi_vars.fd" 0 131072 p7
assert_eq "tree" "Linux.utm/Data/disk.img Linux.utm/Data/efi_vars.fd Linux.utm/config.plist" \
    "$(cd "$MNT" && find Linux.utm -type f | sort | tr '\n' ' ' | sed 's/ $//')"
check "disk image content" vmbio verify "$U/Data/disk.img" 0 $((2 * M)) p6
assert_eq "disk image map" "0 $((2 * M))" "$(vmbio map "$U/Data/disk.img")"
check "cp -a of the bundle inside the mount" cp -a "$U" "$MNT/Copy.utm"
check "copied disk identical" cmp "$U/Data/disk.img" "$MNT/Copy.utm/Data/disk.img"
assert_eq "copied disk keeps holes" "0 $((2 * M))" "$(vmbio map "$MNT/Copy.utm/Data/disk.img")"
check "the store holds the same files" cmp "$STORE/Linux.utm/Data/efi_vars.fd" "$U/Data/efi_vars.fd"

cd / || fail "cd /"
assert_eq "the daemon logged nothing for errors the syscalls already reported (ENOENT, EEXIST, EPERM, ...)" "" "$(grep -Ev "^vmbundlefs: (un)?mounted '" "$T/log" 2>/dev/null | head -n 5)"
unmount_store
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n is clean afterwards: $(head -c 300 "$T/fsck.out")" 0 $rc
finish
