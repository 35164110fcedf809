#!/bin/sh
# remote-pull-deep.sh - a bundle whose paths are longer than PATH_MAX (40 levels of
# 120-byte names: 4,840 bytes) imported from a tar archive, published to a
# directory and pulled from its file:// URL into another store: the pull builds the
# tree one directory at a time (never by a whole path), the small file at the
# bottom reads back equal, the image is there with its size (and, mounted, its
# data, and through a URL mount's pull); the shallow bundle published beside it
# pulls too.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup nofuse
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
export VMBUNDLEFS_CACHE=$T/cache

NAME=$(printf 'x%.0s' $(seq 120))
LEVELS=40

# The archive: deep/<NAME>/... (LEVELS levels)/f and img (8 MiB, "DATA" at
# 4096*1000, sparse), plus flat/config.json.
python3 - "$T/deep.tar" "$NAME" "$LEVELS" <<'PY' || fail "making the archive"
import io, sys, tarfile
out, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    p = "deep"
    def d(path):
        ti = tarfile.TarInfo(path); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
        t.addfile(ti)
    d(p)
    for _ in range(n):
        p += "/" + name
        d(p)
    body = b"at the bottom of a deep tree\n"
    ti = tarfile.TarInfo(p + "/f"); ti.size = len(body); ti.mode = 0o644
    t.addfile(ti, io.BytesIO(body))
    img = bytearray(8 << 20); img[4096 * 1000:4096 * 1000 + 4] = b"DATA"
    ti = tarfile.TarInfo(p + "/img"); ti.size = len(img); ti.mode = 0o644
    t.addfile(ti, io.BytesIO(bytes(img)))
with tarfile.open(out[:-4] + "-flat.tar", "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("flat"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
    t.addfile(ti)
    body = b'{"cpu": 2}\n'
    ti = tarfile.TarInfo("flat/config.json"); ti.size = len(body); ti.mode = 0o644
    t.addfile(ti, io.BytesIO(body))
PY

# at DIR FILE WHAT: FILE at the bottom of the chain under DIR (lib.sh deep_at):
# its text (text), its size (size) or the 4 bytes at 4096*1000 (data).
at() { deep_at "$1" "$NAME" "$LEVELS" "$2" "$3"; }

"$VMB_BIN" import "$STORE" "$T/deep.tar" >"$T/imp.out" 2>&1
assert_eq "import of the deep archive succeeds" 0 $? || cat "$T/imp.out"
"$VMB_BIN" import "$STORE" "$T/deep-flat.tar" >"$T/imp.out" 2>&1
assert_eq "import of the flat archive succeeds" 0 $? || cat "$T/imp.out"
assert_eq "the deep file was imported" "at the bottom of a deep tree" "$(at "$STORE/deep" f text)"

"$VMB_BIN" publish -q "$STORE" deep flat "$T/pub" >"$T/pub.out" 2>&1
assert_eq "publish of the deep bundle succeeds" 0 $? || cat "$T/pub.out"

S2=$T/store2
"$VMB_BIN" init "$S2" >/dev/null 2>&1 || fail "init $S2"
"$VMB_BIN" pull -o cache="$T/cache" "$S2" "file://$T/pub#deep" >"$T/pull.out" 2>&1
rc=$?
assert_eq "pull of the deep bundle succeeds" 0 $rc || cat "$T/pull.out"
assert_eq "the small file at the bottom reads back equal" "at the bottom of a deep tree" "$(at "$S2/deep" f text 2>&1)"
assert_eq "the image at the bottom has its size" 8388608 "$(at "$S2/deep" img size 2>&1)"
tree() (cd "$1" && find . -printf '%y %m %s %P\n' | sort | md5sum)
assert_eq "the pulled tree is the imported one (types, modes, sizes, names)" "$(tree "$STORE/deep")" "$(tree "$S2/deep")"
check "pull of the flat bundle beside it" "$VMB_BIN" pull -o cache="$T/cache" "$S2" "file://$T/pub#flat"
assert_eq "... its file" '{"cpu": 2}' "$(cat "$S2/flat/config.json")"
assert_eq "no staging left behind" "" "$(ls -A "$S2/.vmbundlefs/staging" 2>/dev/null)"
"$VMB_BIN" fsck -n "$S2" >"$T/fsck" 2>&1
assert_eq "fsck -n of the pulled store: clean" 0 $? || cat "$T/fsck"

# Mounted: the image's data comes through the remote layer.
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1 &&
    { exec 9<>/dev/fuse; } 2>/dev/null; then
    exec 9>&-
    STORE=$S2
    VMB_TEST_MOUNT_OPTS="cache=$T/cache"
    mount_store
    assert_eq "mounted: the image's data reads from the published chunks" DATA "$(at "$MNT/deep" img data 2>&1)"
    assert_eq "mounted: the small file" "at the bottom of a deep tree" "$(at "$MNT/deep" f text 2>&1)"
    unmount_store
    # A URL mount pulls it at its first lookup, the same way.
    STORE="file://$T/pub"
    mount_store
    assert_eq "URL mount: the small file at the bottom" "at the bottom of a deep tree" "$(at "$MNT/deep" f text 2>&1)"
    assert_eq "URL mount: the image's data" DATA "$(at "$MNT/deep" img data 2>&1)"
    unmount_store
fi

finish
