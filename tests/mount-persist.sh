#!/bin/sh
# Persistence: after a remount everything is there -- contents, sizes, maps,
# modes, owners, times, xattrs, symlinks, hard links -- with the same st_ino.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
M=1048576

# snapshot DIR: one line per entry, sorted; for files a hash of their content
# (vmbio sum: size + non-zero blocks, found with SEEK_DATA; that holes read as
# zeros is tested elsewhere), their map and user.* xattrs.  Excludes atime and ctime.
snapshot() {
    (
        cd "$1" || exit 1
        find . -mindepth 1 -printf '%P\n' | sort | while IFS= read -r p; do
            line=$(stat -c '%F|%a|%u:%g|%s|%h|%i|%.9Y' -- "$p")
            case $line in
            "regular file"*|"regular empty file"*)
                line="$line|$(vmbio sum "$p")|$(vmbio map "$p" | tr '\n' ',')" ;;
            "symbolic link"*)
                line="$line|-> $(readlink -- "$p")" ;;
            esac
            if command -v getfattr >/dev/null 2>&1 && [ ! -L "$p" ]; then
                line="$line|$(getfattr -d -e hex -- "$p" 2>/dev/null | grep -v '^#' | grep . | tr '\n' ',')"
            fi
            printf '%s|%s\n' "$p" "$line"
        done
    )
}

# Bundle 1: a VM with images, nvram, config.
mkdir -p "$MNT/mac14.vm/Data" "$MNT/linux" "$MNT/empty"
vmbio pwrite "$MNT/mac14.vm/disk.img" 0 $((3 * M)) p1 >/dev/null
truncate -s 8G "$MNT/mac14.vm/disk.img"
vmbio pwrite "$MNT/mac14.vm/disk.img" $((5 * 1024 * M + 12345)) 70000 p2 >/dev/null
vmbio pwrite "$MNT/mac14.vm/nvram.bin" 0 131072 p3 >/dev/null
printf '{"cpu":4,"memory":8192}\n' >"$MNT/mac14.vm/config.json"
: >"$MNT/mac14.vm/empty-file"
vmbio pwrite "$MNT/mac14.vm/Data/aux.img" 0 4096 p4 >/dev/null
truncate -s 1M "$MNT/mac14.vm/Data/aux.img"
ln -s disk.img "$MNT/mac14.vm/current"
ln -s ../nvram.bin "$MNT/mac14.vm/Data/nvram-link"
ln -s /dangling/abs "$MNT/mac14.vm/dangling"
ln "$MNT/mac14.vm/nvram.bin" "$MNT/mac14.vm/Data/nvram-hardlink"
chmod 600 "$MNT/mac14.vm/nvram.bin"
chmod 751 "$MNT/mac14.vm/Data"
[ "$(id -u)" = 0 ] && chown 501:20 "$MNT/mac14.vm/config.json"
if command -v setfattr >/dev/null 2>&1; then
    setfattr -n user.com.apple.quarantine -v '0083;00000000;Tart;' "$MNT/mac14.vm/disk.img"
    setfattr -n user.note -v 0x0001020304ff "$MNT/mac14.vm/config.json"
    setfattr -n user.dir -v yes "$MNT/mac14.vm/Data"
fi
touch -d '2020-01-02 03:04:05.5 UTC' "$MNT/mac14.vm/config.json"
touch -h -d '2019-05-06 07:08:09 UTC' "$MNT/mac14.vm/current"
# Bundle 2: files renamed, deleted, truncated, punched.
vmbio pwrite "$MNT/linux/a" 0 $((2 * M)) p5 >/dev/null
vmbio pwrite "$MNT/linux/b" 0 $((2 * M)) p6 >/dev/null
mv "$MNT/linux/a" "$MNT/linux/renamed"
rm "$MNT/linux/b"
vmbio pwrite "$MNT/linux/shrunk" 0 $((4 * M)) p7 >/dev/null
truncate -s $((M + 100)) "$MNT/linux/shrunk"
vmbio pwrite "$MNT/linux/punched" 0 $((4 * M)) p8 >/dev/null
vmbio falloc "$MNT/linux/punched" punch $M $M >/dev/null
vmbio pwrite "$MNT/linux/zeros" 0 $((2 * M)) 0 >/dev/null
# Touch the directories' times last, so that the listing is stable.
touch -d '2021-01-01 00:00:00 UTC' "$MNT/linux" "$MNT/empty"

S1=$(snapshot "$MNT")
printf '%s\n' "$S1" | sed 's/^/    | /'
printf '%s\n' "$S1" >"$T/snap1"
assert_num "snapshot has all entries" "$(printf '%s\n' "$S1" | wc -l)" -ge 17
assert_eq "punched file's map" "0 $M,$((2 * M)) $((2 * M))," "$(vmbio map "$MNT/linux/punched" | tr '\n' ',')"
assert_eq "all-zero file has no data" "" "$(vmbio map "$MNT/linux/zeros")"

# The mount's st_ino is the backing file's.
bad=
while IFS= read -r p; do
    [ "$(stat -c %i "$MNT/$p")" = "$(stat -c %i "$STORE/$p")" ] || bad="$bad $p"
done < <(cd "$MNT" && find . -mindepth 1 -printf '%P\n')
assert_eq "st_ino in the mount equals the backing file's for every entry" "" "$bad"

remount
S2=$(snapshot "$MNT")
assert_eq "after remount: identical snapshot (contents, maps, modes, owners, mtimes, links, xattrs, st_ino)" "$S1" "$S2"
check "8 GiB image: data at 5 GiB" vmbio verify "$MNT/mac14.vm/disk.img" $((5 * 1024 * M + 12345)) 70000 p2
check "8 GiB image: first 3 MiB" vmbio verify "$MNT/mac14.vm/disk.img" 0 $((3 * M)) p1
assert_eq "hard link count" 2 "$(stat -c %h "$MNT/mac14.vm/nvram.bin")"
assert_eq "hard link shares the inode" "$(st_ino "$MNT/mac14.vm/nvram.bin")" "$(st_ino "$MNT/mac14.vm/Data/nvram-hardlink")"
check "deleted file stays deleted" test ! -e "$MNT/linux/b"

# Change things after the remount, remount again.
vmbio pwrite "$MNT/mac14.vm/nvram.bin" 4096 4096 p9 >/dev/null
echo appended >>"$MNT/mac14.vm/config.json"
mv "$MNT/linux" "$MNT/linux2"
touch -d '2021-01-01 00:00:00 UTC' "$MNT/linux2"
S3=$(snapshot "$MNT")
remount
S4=$(snapshot "$MNT")
assert_eq "after a second remount: identical snapshot" "$S3" "$S4"
check "nvram change persisted (through the hard link too)" vmbio verify "$MNT/mac14.vm/Data/nvram-hardlink" 4096 4096 p9

# The store itself holds each file's exact logical content (no vmbundlefs needed).
unmount_store
S5=$(snapshot "$STORE" | grep -v '^\.vmbundlefs')
assert_eq "the store's backing files have the same contents and maps as the mount showed" \
    "$(printf '%s\n' "$S4" | cut -d'|' -f1,2,4,5,8,9 | grep -v '^[^|]*|directory')" \
    "$(printf '%s\n' "$S5" | cut -d'|' -f1,2,4,5,8,9 | grep -v '^[^|]*|directory')"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n is clean: $(head -c 300 "$T/fsck.out")" 0 $rc
finish
