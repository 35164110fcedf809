#!/bin/sh
# Hostile and broken archives: each gets a clear error, writes nothing outside the
# staging area and leaves the store exactly as it was (listing and checksums, and
# no staging leftovers). Also: interruption, --replace of a bundle in use, the
# free-space bound.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
vmb_setup nofuse
. "$(dirname "$0")/archive-lib.sh"
need tar gzip xz python3

A=$T/arch
mkdir -p "$A" "$T/src/good/sub"
printf 'hello\n' >"$T/src/good/config.json"
printf 'nvram\n' >"$T/src/good/nvram.bin"
mkimg "$T/src/good/disk.img" $((16 * M)) 5
tar -C "$T/src" --sparse -cf "$A/good.tar" good || fail "tar failed"
check "a good bundle to start with" vmb import "$STORE" "$A/good.tar"
ESC=/tmp/vmb-escape-$$
on_exit "rm -rf '$ESC'"

# The hostile archives, made with Python's tarfile and zipfile.
python3 - "$A" "$ESC" <<'PY' || fail "cannot craft the archives"
import io, os, sys, tarfile, zipfile
out, esc = sys.argv[1], sys.argv[2]

def tar(name, entries, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(os.path.join(out, name), "w", format=fmt) as t:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e.get("type", tarfile.REGTYPE)
            ti.linkname = e.get("link", "")
            ti.mode = e.get("mode", 0o644)
            ti.pax_headers = e.get("pax", {})
            data = e.get("data", b"")
            ti.size = e.get("size", len(data)) if ti.type == tarfile.REGTYPE else 0
            if ti.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)

D = lambda n: {"name": n, "type": tarfile.DIRTYPE, "mode": 0o755}
F = lambda n, d=b"x\n": {"name": n, "data": d}
tar("absolute.tar", [D("vm"), F("vm/a"), F(esc + "/abs")])
tar("dotdot.tar", [D("vm"), F("vm/a"), F("vm/../../../../../../escape-dotdot")])
tar("dotdot-inner.tar", [D("vm"), F("vm/sub/../../escape-inner")])
# Symlinks that point out of the bundle are imported as the inert links they are;
# entries that go through them are refused (tests/archive-symlinks.sh).
tar("through-symlink.tar", [D("vm"), D("vm/d"),
    {"name": "vm/l", "type": tarfile.SYMTYPE, "link": "d"}, F("vm/l/x")])
tar("hardlink-out.tar", [D("vm"), {"name": "vm/h", "type": tarfile.LNKTYPE, "link": "../../../../../etc/passwd"}])
tar("hardlink-abs.tar", [D("vm"), {"name": "vm/h", "type": tarfile.LNKTYPE, "link": "/etc/passwd"}])
tar("hardlink-later.tar", [D("vm"), {"name": "vm/h", "type": tarfile.LNKTYPE, "link": "vm/later"}, F("vm/later")])
tar("chardev.tar", [D("vm"), F("vm/a"), {"name": "vm/null", "type": tarfile.CHRTYPE}])
tar("blockdev.tar", [D("vm"), {"name": "vm/sda", "type": tarfile.BLKTYPE}])
tar("fifo.tar", [D("vm"), {"name": "vm/fifo", "type": tarfile.FIFOTYPE}])
tar("duplicate.tar", [D("vm"), F("vm/a", b"first\n"), F("vm/a", b"second\n")])
tar("duplicate-dir.tar", [D("vm"), D("vm/d"), D("vm/d")])
tar("file-then-dir.tar", [D("vm"), F("vm/a"), F("vm/a/b")])
# A GNU sparse (pax 0.1) entry whose map lies beyond its size.
tar("sparse-beyond.tar", [D("vm"), {"name": "vm/disk.img", "data": b"y" * 512,
    "pax": {"GNU.sparse.size": "4096", "GNU.sparse.numblocks": "1",
            "GNU.sparse.map": "1048576,512"}}])
with zipfile.ZipFile(os.path.join(out, "zip-dotdot.zip"), "w") as z:
    z.writestr("vm/a", "x")
    z.writestr("vm/../../../../../escape-zip", "x")
with zipfile.ZipFile(os.path.join(out, "zip-abs.zip"), "w") as z:
    z.writestr(esc + "/zipabs", "x")
PY

# Broken archives.
head -c $(( $(stat -c %s "$A/good.tar") / 2 )) "$A/good.tar" >"$A/truncated.tar"
gzip -c <"$A/good.tar" >"$A/good.tar.gz"
python3 - "$A/good.tar.gz" "$A/corrupt.tar.gz" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
for i in range(30, 60):
    d[i] ^= 0x5a
open(sys.argv[2], "wb").write(d)
PY
head -c 100000 /dev/urandom >"$A/random.bin"
xz -c <"$A/good.tar" >"$A/good.tar.xz"
python3 - "$A/good.tar.xz" "$A/corrupt.tar.xz" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
for i in range(len(d) // 2, len(d) // 2 + 64):
    d[i] ^= 0x5a
open(sys.argv[2], "wb").write(d)
PY
mkdir -p "$T/big/big"
vmbio pwrite "$T/big/big/data" 0 $((8 * M)) p3 >/dev/null
tar -C "$T/big" -cf "$A/big.tar" big

BEFORE=$(store_snapshot "$STORE")
OUTSIDE_BEFORE=$(cd "$T" && find . -path ./arch -prune -o -path ./store -prune -o -print | sort)

# refused DESC ERE ARCHIVE [OPTIONS...]: the import (as RNAME when set) fails with a
# message matching ERE and changes nothing.
refused() {
    local desc=$1 re=$2 arch=$3 out rc
    shift 3
    out=$("$VMB_BIN" import "$@" "$STORE" "$arch" ${RNAME:-} 2>&1)
    rc=$?
    assert_eq "$desc: exit status 1" 1 "$rc"
    assert_match "$desc: message" "^vmbundlefs: cannot import '.*': .*$re" "$out"
    assert_eq "$desc: the store is unchanged" "$BEFORE" "$(store_snapshot "$STORE")"
    check "$desc: no staging leftovers" staging_clean
    assert_eq "$desc: nothing written outside the store" "$OUTSIDE_BEFORE" \
        "$(cd "$T" && find . -path ./arch -prune -o -path ./store -prune -o -print | sort)"
    check "$desc: nothing escaped" test ! -e "$ESC"
}

refused "absolute path" "absolute path" "$A/absolute.tar"
refused "'..' component" "'\.\.' component" "$A/dotdot.tar"
refused "inner '..' component" "'\.\.' component" "$A/dotdot-inner.tar"
refused "entry through a symlink" "goes through 'vm/l', which is a symlink" "$A/through-symlink.tar"
refused "hard link outside" "hard link 'vm/h' points outside" "$A/hardlink-out.tar"
refused "hard link to an absolute path" "absolute path" "$A/hardlink-abs.tar"
refused "hard link to a later entry" "not an earlier file" "$A/hardlink-later.tar"
refused "character device" "is a device node" "$A/chardev.tar"
refused "block device" "is a device node" "$A/blockdev.tar"
refused "FIFO" "is a FIFO" "$A/fifo.tar"
refused "duplicate file" "duplicate entry 'vm/a'" "$A/duplicate.tar"
refused "duplicate directory" "duplicate entry 'vm/d'" "$A/duplicate-dir.tar"
refused "entry below a file" "not a directory" "$A/file-then-dir.tar"
refused "sparse map beyond the size" "past its size|[Ss]parse|[Dd]amaged|[Tt]runcat" "$A/sparse-beyond.tar"
refused "zip entry with '..'" "'\.\.' component" "$A/zip-dotdot.zip"
refused "zip entry with an absolute path" "absolute path" "$A/zip-abs.zip"
refused "truncated archive" "[Tt]runcated|[Dd]amaged|[Pp]remature" "$A/truncated.tar"
RNAME=corrupt
refused "corrupt gzip stream" "[Cc]orrupt|[Dd]amaged|[Ii]nvalid|gzip|[Tt]runcated|error" "$A/corrupt.tar.gz"
refused "corrupt xz stream" "[Cc]orrupt|[Dd]amaged|[Ii]nvalid|xz|lzma|[Tt]runcated|error" "$A/corrupt.tar.xz"
RNAME=
refused "not an archive" "[Uu]nrecognized|not an archive" "$A/random.bin"
refused "past --max-size" "past --max-size" "$A/big.tar" --max-size=1M
refused "existing bundle" "already exists" "$A/good.tar"
check "a bad --max-size is a usage error" bash -c '"$1" import --max-size=lots "$2" "$3"; [ $? = 2 ]' \
    _ "$VMB_BIN" "$STORE" "$A/big.tar"

# Interrupted: SIGINT while the archive is still arriving on standard input.
mkfifo "$A/pipe"
( head -c $((3 * M)) "$A/big.tar"; exec sleep 20 ) >"$A/pipe" &
FEED=$!
on_exit "kill $FEED 2>/dev/null"
"$VMB_BIN" import "$STORE" - interrupted <"$A/pipe" >"$A/int.out" 2>&1 &
IMP=$!
# Its staging directory appears once it runs (its SIGINT handler is set by then; a
# SIGINT before would kill it with status 130); then 1.5 s for it to read what has
# come and wait for more.
import_staging() { compgen -G "$STORE/.vmbundlefs/staging/imp.*" >/dev/null || ! kill -0 $IMP 2>/dev/null; }
wait_for 30 import_staging
sleep 1.5
START=$SECONDS
kill -INT $IMP
wait $IMP
assert_eq "interrupted import: exit status 1" 1 "$?"
assert_num "interrupted import: stops at once" $((SECONDS - START)) -lt 10
assert_match "interrupted import: message" "interrupted; the store is unchanged" "$(cat "$A/int.out")"
assert_eq "interrupted import: the store is unchanged" "$BEFORE" "$(store_snapshot "$STORE")"
check "interrupted import: no staging leftovers" staging_clean
kill $FEED 2>/dev/null

# --replace of a bundle in use (a POSIX lock on its aux-storage file).
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+"); fcntl.lockf(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close(); time.sleep(60)' \
    "$STORE/good/nvram.bin" "$A/locked" &
LOCKER=$!
on_exit "kill $LOCKER 2>/dev/null"
for i in $(seq 50); do [ -e "$A/locked" ] && break; sleep 0.1; done
BEFORE=$(store_snapshot "$STORE")
refused "--replace of a bundle in use" "in use \(pid $LOCKER" "$A/good.tar" --replace
kill $LOCKER; wait $LOCKER 2>/dev/null

# The free-space bound: a small tmpfs store (root only).
if [ "$(id -u)" = 0 ] && mkdir -p "$T/small" && mount -t tmpfs -o size=80m vmbtest "$T/small" 2>/dev/null; then
    on_exit "umount '$T/small' 2>/dev/null"
    STORE0=$STORE
    STORE=$T/small/store
    vmb init "$STORE" || fail "init on tmpfs"
    mkdir -p "$T/big2/big2"
    vmbio pwrite "$T/big2/big2/data" 0 $((40 * M)) p4 >/dev/null
    tar -C "$T/big2" -cf "$A/big2.tar" big2
    BEFORE=$(store_snapshot "$STORE")
    OUTSIDE_BEFORE=$(cd "$T" && find . -path ./arch -prune -o -path ./store -prune -o -path ./small -prune -o -print | sort)
    out=$("$VMB_BIN" import "$STORE" "$A/big2.tar" 2>&1)
    assert_match "past the free space: refused" "past the free space" "$out"
    assert_eq "past the free space: the store is unchanged" "$BEFORE" "$(store_snapshot "$STORE")"
    check "past the free space: no staging leftovers" staging_clean
    check "within the free space: a small archive imports" vmb import "$STORE" "$A/good.tar"
    umount "$T/small"
    STORE=$STORE0
else
    say "# skipped the free-space check (needs root and tmpfs)"
fi
finish
