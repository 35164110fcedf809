#!/bin/sh
# Paths of any depth in the store-level commands: a bundle 2,500 levels deep (a
# 5,000-byte path), one 65 levels deep, one of 250-byte names: ls, fsck -n, fsck,
# export (pax long names) and import back, import --replace of a deep bundle, with
# contents compared; the shallow bundles beside them are unaffected.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup nofuse
command -v bsdtar >/dev/null 2>&1 || skip "bsdtar is not installed (libarchive-tools)"

LONG=$(printf 'n%.0s' $(seq 250))

# Trees deeper than PATH_MAX are made and read one directory at a time (dir_fd):
# a shell's cd is quadratic in the depth.
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"

# chain DIR NAME LEVELS TEXT: LEVELS nested directories NAME under DIR, a file f
# holding TEXT and a sparse 8 MiB image with 4 bytes of data at 4 MiB-ish.
chain() {
    python3 - "$@" <<'PY'
import os, sys
d, name, n, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
for _ in range(n):
    os.mkdir(name, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
f = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(f, text.encode())
os.close(f)
f = os.open("img", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.ftruncate(f, 8 << 20)
os.pwrite(f, b"DATA", 4096 * 1000)
os.close(f)
PY
}

# at DIR NAME LEVELS FILE WHAT: print FILE at the bottom of a chain (lib.sh deep_at)
at() { deep_at "$@"; }

mkdir "$STORE/deep" "$STORE/d65" "$STORE/long" "$STORE/plain"
chain "$STORE/deep" d 2500 bottom || fail "making the deep bundle"
chain "$STORE/d65" d 65 sixtyfive || fail "making the 65-level bundle"
chain "$STORE/long" "$LONG" 20 longnames || fail "making the long-name bundle"
echo hello >"$STORE/plain/config.json"

"$VMB_BIN" ls -b "$STORE" >"$T/ls" 2>"$T/ls.err"
assert_eq "ls of a store with deep bundles succeeds" 0 $?
assert_match "ls shows the 5,000-byte-deep bundle with its 2 files" '^deep +8388614 +8192 +2 +8192 +0$' "$(cat "$T/ls")"
assert_match "ls shows the 65-level bundle" '^d65 +8388617 +8192 +2 +8192 +0$' "$(cat "$T/ls")"
assert_match "ls shows the long-name bundle" '^long +8388617 +8192 +2 +8192 +0$' "$(cat "$T/ls")"
assert_match "ls shows the plain bundle" '^plain ' "$(cat "$T/ls")"

"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck -n: problems found (maps missing), not 'could not run'" 4 $?
assert_match "fsck -n names the deep file (shortened with '...')" "^deep/d/d/d/[d/]*\\.\\.\\.[d/]*/img: map needs rebuilding \\(it had no map\\)\$" "$(cat "$T/fsck")"
"$VMB_BIN" fsck "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck repairs them all" 1 $?
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck -n afterwards: clean" 0 $?
assert_match "... every file was checked" ': 7 files checked, 0 problems' "$(cat "$T/fsck")"

for b in deep d65 long; do
    "$VMB_BIN" export "$STORE" $b "$T/$b.tar" >"$T/exp.out" 2>&1
    assert_eq "export of bundle $b succeeds" 0 $? || cat "$T/exp.out"
done
n=$(bsdtar -tf "$T/deep.tar" | awk '{ if (length($0) > m) m = length($0) } END { print m }')
assert_eq "the archive holds the whole 5,010-byte path (pax)" 5008 "$n"

S2=$T/store2
"$VMB_BIN" init "$S2" || fail "init $S2"
for b in deep d65 long; do
    "$VMB_BIN" import "$S2" "$T/$b.tar" >"$T/imp.out" 2>&1
    assert_eq "import of the $b archive succeeds" 0 $? || cat "$T/imp.out"
done
assert_eq "the deep file came back" bottom "$(at "$S2/deep" d 2500 f text)"
assert_eq "... and the image's data" DATA "$(at "$S2/deep" d 2500 img data)"
assert_eq "... still sparse" 8 "$(at "$S2/deep" d 2500 img blocks)"
assert_eq "the 65-level file came back" sixtyfive "$(at "$S2/d65" d 65 f text)"
assert_eq "the long-name file came back" longnames "$(at "$S2/long" "$LONG" 20 f text)"
tree() (cd "$1" && find . -printf '%y %m %s %P\n' | sort | md5sum)
assert_eq "the deep tree is the same after export and import" "$(tree "$STORE/deep")" "$(tree "$S2/deep")"
assert_eq "the long-name tree is the same" "$(tree "$STORE/long")" "$(tree "$S2/long")"

"$VMB_BIN" import --replace "$S2" "$T/deep.tar" >"$T/imp.out" 2>&1
assert_eq "import --replace over the deep bundle (the old one removed)" 0 $? || cat "$T/imp.out"
assert_eq "... no staging left behind" "" "$(ls -A "$S2/.vmbundlefs/staging" 2>/dev/null)"
"$VMB_BIN" fsck -n "$S2" >"$T/fsck2" 2>&1
assert_eq "fsck -n of the imported store: clean (maps of the replaced bundle gone)" 0 $? || cat "$T/fsck2"

# In the mount: removing and renaming in bundles with deep directories (the in-use
# check walks the bundle).
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
    mount_store
    echo x >"$MNT/deep/top" || fail "write in the deep bundle"
    check "mount: unlink in the 5,000-byte-deep bundle" rm "$MNT/deep/top"
    check "mount: rename of the 65-level bundle" mv "$MNT/d65" "$MNT/d65b"
    check "mount: rm -rf of the 65-level bundle" rm -rf "$MNT/d65b"
    check "mount: rm -rf of the long-name bundle" rm -rf "$MNT/long"
    assert_eq "... they are gone" "deep plain" "$(ls "$MNT" | tr '\n' ' ' | sed 's/ $//')"
    unmount_store
fi

finish
