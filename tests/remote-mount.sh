#!/bin/sh
# remote-mount.sh - `vmbundlefs mount URL MNT` of a published store (file:// URL):
# the published tree read-only (bundles, modes, symlinks, xattrs), images equal to
# their sources with exact SEEK_DATA/SEEK_HOLE and st_blocks, writes refused
# (EROFS), the shadow store removed at unmount; offline after a first mount (the
# saved top index): what is cached reads, the rest EIO; a signed index with
# -o pubkey= (and a tampered or unsigned one refused, an older signed one refused as
# a rollback of the saved one); bad input.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
command -v openssl >/dev/null || skip "no openssl"

mkdir -p "$T/src/vmA/sub" "$T/src/vmB"
truncate -s 16M "$T/src/vmA/disk.img"
vmbio pwrite "$T/src/vmA/disk.img" 65536 300000 p2 >/dev/null
vmbio pwrite "$T/src/vmA/disk.img" 8388608 4096 p3 >/dev/null
echo config >"$T/src/vmA/config.plist"
setfattr -n user.tag -v A "$T/src/vmA/config.plist"
ln -s config.plist "$T/src/vmA/link"
echo nv >"$T/src/vmA/sub/nvram"
truncate -s 4M "$T/src/vmB/disk.img"
vmbio pwrite "$T/src/vmB/disk.img" 0 1048576 p4 >/dev/null
openssl genpkey -algorithm ed25519 -out "$T/key.pem" 2>/dev/null || skip "openssl cannot make an ed25519 key"
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem" 2>/dev/null
"$MKPUB" -c 65536 -k "$T/key.pem" "$T/pub" "$T/src/vmA" "$T/src/vmB" || hard_error "mkpub failed"
URL="file://$T/pub"
export VMB_TEST_MOUNT_OPTS="cache=$T/cache,pubkey=$T/pub.pem"

STORE=$URL mount_store
check "both bundles are there" test -d "$MNT/vmA" -a -d "$MNT/vmB"
check "vmA's image equals its source" cmp "$T/src/vmA/disk.img" "$MNT/vmA/disk.img"
assert_eq "SEEK_DATA/SEEK_HOLE exact" "$(vmbio map "$T/src/vmB/disk.img")" "$(vmbio map "$MNT/vmB/disk.img")"
assert_eq "st_blocks exact" "$(stat -c %b "$T/src/vmB/disk.img")" "$(stat -c %b "$MNT/vmB/disk.img")"
assert_eq "small file" "config" "$(cat "$MNT/vmA/config.plist")"
assert_eq "its xattr" "A" "$(getfattr --only-values -n user.tag "$MNT/vmA/config.plist" 2>/dev/null)"
assert_eq "symlink" "config.plist" "$(readlink "$MNT/vmA/link")"
assert_eq "writes are refused" "EROFS" "$(vmbio pwrite "$MNT/vmA/disk.img" 0 10 p1)"
assert_eq "creates are refused" "EROFS" "$(vmbio create "$MNT/vmA/new")"
# publish from a URL mount: no snapshot can be taken there; a clear error, and
# nothing made at DEST (the destination was once created before the snapshot failed)
rc=0; "$VMB_BIN" publish "$MNT" vmA "$T/mirror" >"$T/o" 2>&1 || rc=$?
assert_eq "publish from a URL mount fails" "1" "$rc"
assert_match "... saying it is a published store's mount, and what to do" \
    "'$MNT' is a mount of a published store, read-only \\(its bundles can be pulled" "$(cat "$T/o")"
check "... and nothing is made at DEST" test ! -e "$T/mirror"
shadow=$(ls "$T/cache/mnt")
assert_match "a shadow store under CACHE/mnt" "^[0-9a-f]{16}$" "$shadow"
assert_eq "the mount's root is 0755 (others reach the bundles with allow_other), CACHE/mnt 0700" \
    "755 700" "$(stat -c %a "$MNT") $(stat -c %a "$T/cache/mnt")"
# a new cache has its 256 chunks/<aa> made at once (not one by one by the fills)
assert_eq "chunks/00..ff made with the cache" 256 "$(find "$T/cache/chunks" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f][0-9a-f]' | wc -l)"
# a URL's mount sets the kernel's readahead to 256 KiB (one chunk) (a store's is 1004: mount-sparse.sh)
dev=$(mountpoint -d "$MNT")
if [ -r "/sys/class/bdi/$dev/read_ahead_kb" ]; then
    assert_eq "a URL mount's readahead is 256 KiB (bdi $dev)" 256 "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
fi
unmount_store
assert_eq "the shadow store is gone after unmount" "" "$(ls "$T/cache/mnt")"
assert_eq "--log says what was mounted (the URL), where, and when it ended" \
    "vmbundlefs: mounted '$URL' on '$MNT'|vmbundlefs: unmounted '$MNT'" \
    "$(grep -E "^vmbundlefs: (un)?mounted '" "$T/log" | sed 's/ (daemon pid [0-9]*)$//' | paste -sd '|')"

# offline: the saved index, the cached chunks (vmA's image was read, vmB's not)
mv "$T/pub" "$T/pub.away"
VMB_TEST_MOUNT_OPTS="$VMB_TEST_MOUNT_OPTS,readahead_kb=512" STORE=$URL mount_store
dev=$(mountpoint -d "$MNT")
if [ -r "/sys/class/bdi/$dev/read_ahead_kb" ]; then
    assert_eq "-o readahead_kb= sets a URL mount's readahead" 512 "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
fi
check "offline: cached image reads" cmp "$T/src/vmA/disk.img" "$MNT/vmA/disk.img"
assert_eq "offline: an uncached image fails with EIO" "EIO" "$(vmbio read "$MNT/vmB/disk.img")"
unmount_store
mv "$T/pub.away" "$T/pub"

# rollback (outside report r27 G3): a compromised server or mirror serves an older,
# validly signed index: refused, naming the URL and both generations; the newer
# index saved in the cache stays (and still mounts offline); pull refuses it too
cp "$T/pub/index" "$T/old.index"
gold=$(sed -n 's/^generation //p' "$T/old.index")
"$MKPUB" -c 65536 -k "$T/key.pem" "$T/pub" "$T/src/vmA" >/dev/null || hard_error "mkpub failed"
gnew=$(sed -n 's/^generation //p' "$T/pub/index")
STORE=$URL mount_store
unmount_store
slot=$(ls "$T/cache/urls")
assert_eq "the newer index (generation $gnew) is saved" "generation $gnew" "$(sed -n 2p "$T/cache/urls/$slot")"
cp "$T/old.index" "$T/pub/index"
out=$("$VMB_BIN" mount -o cache="$T/cache",pubkey="$T/pub.pem" "$URL" "$MNT" 2>&1); rc=$?
assert_eq "an older signed index is refused" "1" "$rc"
assert_match "... naming the URL, both generations, the rollback" \
    "'$URL' has generation $gold, older than the verified index saved for it in the cache \\(generation $gnew\\): refused as a rollback" "$out"
assert_match "... and how to accept a store published again from scratch" "remove $T/cache/urls/$slot" "$out"
check_fails "... and nothing is mounted" mountpoint -q "$MNT"
assert_eq "... and the saved index is still the newer one" "generation $gnew" "$(sed -n 2p "$T/cache/urls/$slot")"
out=$("$VMB_BIN" pull -o cache="$T/cache",pubkey="$T/pub.pem" "$STORE" "$URL#vmA" 2>&1); rc=$?
assert_eq "pull refuses it too" "1" "$rc"
assert_match "... saying why" "refused as a rollback" "$out"
check_fails "... and pulls nothing" test -e "$STORE/vmA"
mv "$T/pub" "$T/pub.away"
STORE=$URL mount_store
check "offline, the saved newer index mounts" test -d "$MNT/vmA"
unmount_store
mv "$T/pub.away" "$T/pub"
# recovery after a republish from scratch: remove the URL's slot
rm "$T/cache/urls/$slot"
STORE=$URL mount_store
check "with the slot removed the older index is taken" test -d "$MNT/vmB"
unmount_store
assert_eq "... and saved" "generation $gold" "$(sed -n 2p "$T/cache/urls/$slot")"

# signatures
openssl genpkey -algorithm ed25519 -out "$T/other.pem" 2>/dev/null
openssl pkey -in "$T/other.pem" -pubout -out "$T/otherpub.pem" 2>/dev/null
out=$("$VMB_BIN" mount -o cache="$T/cache2",pubkey="$T/otherpub.pem" "$URL" "$MNT" 2>&1); rc=$?
assert_eq "an index signed by another key is refused" "1" "$rc"
assert_match "... saying why" "signature" "$out"
check_fails "... and nothing is mounted" mountpoint -q "$MNT"
"$MKPUB" -c 65536 "$T/pub" "$T/src/vmB" >/dev/null   # republished unsigned
out=$("$VMB_BIN" mount -o cache="$T/cache2",pubkey="$T/pub.pem" "$URL" "$MNT" 2>&1); rc=$?
assert_eq "an unsigned index is refused" "1" "$rc"
assert_match "... saying why" "signed" "$out"
out=$("$VMB_BIN" mount -o cache="$T/cache2" "ftp://x/y" "$MNT" 2>&1); rc=$?
assert_eq "an unknown URL scheme: usage" "2" "$rc"
# credentials in a URL would be kept in the store's files and shown to every
# local user (outside report r27 G4): refused, without echoing the password
for u in "http://bob:s3cret@127.0.0.1:1/pub" "https://bob@127.0.0.1:1/pub" \
    "s3://bob:s3cret@bucket/prefix"; do
    out=$("$VMB_BIN" mount -o cache="$T/cache2" "$u" "$MNT" 2>&1); rc=$?
    assert_eq "a URL with a user name or password is refused ($rc)" "2" "$rc"
    assert_match "... saying why" "a URL with a user name or password .* is refused" "$out"
    check_fails "... without showing the password" grep -q s3cret <<<"$out"
done
out=$("$VMB_BIN" pull -o cache="$T/cache2" "$STORE" "http://bob:s3cret@127.0.0.1:1/pub#vmB" 2>&1); rc=$?
assert_eq "pull of such a URL is refused too" "2" "$rc"
out=$("$VMB_BIN" mount -o cache="$T/cache2",rw "$URL" "$MNT" 2>&1); rc=$?
assert_eq "-o rw on a URL mount is refused (outside report r27 G22)" "2" "$rc"
assert_match "... saying why" "read-only" "$out"
check_fails "... and nothing is mounted" mountpoint -q "$MNT"
out=$("$VMB_BIN" mount -o cache="$T/cache2" "file://$T/nothere" "$MNT" 2>&1); rc=$?
assert_eq "a URL with nothing published" "1" "$rc"
assert_eq "nothing left under CACHE/mnt" "" "$(ls "$T/cache2/mnt" 2>/dev/null)"

finish
