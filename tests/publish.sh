#!/bin/sh
# vmbundlefs publish through the command (issue 11): a mounted store published while
# a writer runs gives a point-in-time image (the writer writes a counter n into
# block n mod N in order: a consistent image holds, for the largest counter K it
# holds, exactly the last counter <= K of every block); the temporary snapshots go;
# tests/helpers/pubcheck reads it all back checking every digest; a republish writes
# only the index; a signed index verifies (pubcheck with the key, and openssl
# itself) and a changed byte is refused; a changed chunk is found; bad input fails
# with a clear message and leaves DEST as it was.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v python3 >/dev/null || skip "python3 is not installed"
command -v openssl >/dev/null || skip "openssl is not installed"
PC=$VMB_TESTBIN/helpers/pubcheck
M=$((1024 * 1024))
N=4096   # blocks the writer cycles over: 16 MiB
mount_store

mkdir "$MNT/vm" "$MNT/vm/nvram"
printf 'cpus 4\nmemory 8G\n' >"$MNT/vm/config"
head -c 20000 /dev/urandom >"$MNT/vm/nvram/efi.vars"
truncate -s 64M "$MNT/vm/disk.img"
head -c $((3 * M)) /dev/urandom | dd of="$MNT/vm/disk.img" bs=1M seek=40 conv=notrunc status=none
ln -s disk.img "$MNT/vm/current"

cat >"$T/writer.py" <<'PY'
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
n, N = 0, int(sys.argv[2])
while True:
    os.pwrite(fd, struct.pack('<Q', n + 1) * 512, (n % N) * 4096)
    n += 1
    if n % 256 == 0:
        open(sys.argv[3] + '.tmp', 'w').write(str(n))
        os.replace(sys.argv[3] + '.tmp', sys.argv[3])
PY
python3 "$T/writer.py" "$MNT/vm/disk.img" $N "$T/writer.count" &
writer=$!
on_exit "kill -9 $writer 2>/dev/null"
for i in $(seq 1 100); do [ -s "$T/writer.count" ] && [ "$(cat "$T/writer.count")" -ge $((2 * N)) ] && break; sleep 0.1; done
check "the writer runs" kill -0 $writer

# ---- publish the mounted store under the writer ----
out=$("$VMB_BIN" publish --chunk-size=256K "$MNT" vm "$T/pub" 2>"$T/err")
rc=$?
assert_eq "publish of a mounted store under a writer (exit 0)" 0 "$rc" || cat "$T/err"
assert_match "... prints a summary" "^published 1 bundle to $T/pub \(generation 1\)" "$out"
assert_eq "... no progress bar when stderr is not a terminal" "" "$(cat "$T/err")"
c1=$(cat "$T/writer.count")
for i in $(seq 1 50); do [ "$(cat "$T/writer.count")" -gt "$c1" ] && break; sleep 0.1; done
check "... the writer goes on writing" test "$(cat "$T/writer.count")" -gt "$c1"
assert_eq "... its temporary snapshot is deleted" "" \
    "$(ls "$STORE/.vmbundlefs/snapshots" 2>/dev/null | grep publish-)"
check "pubcheck reads it all, every digest right" "$PC" "$T/pub"
check "... the image comes out" "$PC" "$T/pub" vm disk.img "$T/disk.out"
cat >"$T/consistent.py" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
N = int(sys.argv[2])
vals = []
for b in range(N):
    blk = d[b * 4096:(b + 1) * 4096]
    v = struct.unpack_from('<Q', blk)[0]
    if blk != struct.pack('<Q', v) * 512:
        print("block %d is torn" % b); sys.exit(1)
    vals.append(v)
K = max(vals)            # counter + 1 of the last write in the image
for b in range(N):
    # the last write <= K to block b: counters n with n % N == b, n + 1 <= K
    want = 0
    if K - 1 >= b:
        want = (K - 1) - ((K - 1 - b) % N) + 1
    if vals[b] != want:
        print("block %d holds %d, a point-in-time image with last write %d holds %d" % (b, vals[b], K, want)); sys.exit(1)
print(K)
PY
out=$(python3 "$T/consistent.py" "$T/disk.out" $N)
assert_match "... and is a point-in-time image of the writer's blocks" '^[0-9]+$' "$out"
assert_num "... taken while it ran (after 2N writes)" "$out" -ge $((2 * N))
check "... the rest of the image as written" cmp <(dd if="$MNT/vm/disk.img" bs=1M skip=40 count=24 status=none) \
    <(dd if="$T/disk.out" bs=1M skip=40 count=24 status=none)
check "... its size" test "$(st_size "$T/disk.out")" -eq $((64 * M))
"$PC" "$T/pub" vm config "$T/config.out" >/dev/null
check "the config comes out" cmp "$MNT/vm/config" "$T/config.out"
"$PC" "$T/pub" vm nvram/efi.vars "$T/efi.out" >/dev/null
check "the NVRAM comes out" cmp "$MNT/vm/nvram/efi.vars" "$T/efi.out"
map=$("$PC" -m "$T/pub" vm disk.img)
assert_eq "the image's data map: the writer's 16 MiB and the 3 MiB at 40 MiB" \
    "0 4096
10240 768" "$map"
kill -9 $writer; wait $writer 2>/dev/null
nobj=$(find "$T/pub/objects" -type f | wc -l)
assert_num "zero chunks are not stored (at most 64 + 12 chunks + 4 other objects)" "$nobj" -le 80

# ---- republish: what changed, then nothing but the index ----
out=$("$VMB_BIN" publish --chunk-size=256K "$MNT" vm "$T/pub" 2>&1)
assert_match "a republish after the writer stopped writes what it changed since" \
    "generation 2\): .* (6[4-9]|7[0-9]) objects written" "$out"
"$PC" "$T/pub" vm disk.img "$T/disk2.out" >/dev/null
check "... which reads back as the image is now" cmp "$MNT/vm/disk.img" "$T/disk2.out"
nobj=$(find "$T/pub/objects" -type f | wc -l)
out=$("$VMB_BIN" publish --chunk-size=256K "$MNT" vm "$T/pub" 2>&1)
# (a snapshot renames the frozen files' new deltas into the bundle: its directory's
# mtime moves, so the bundle's manifest is new each time)
assert_match "a republish of the same writes only the index and the bundle's manifest" \
    "generation 3\\): .* 2 objects written \\([0-9]+ B\\)" "$out"
assert_eq "... and no chunk" "$((nobj + 1))" "$(find "$T/pub/objects" -type f | wc -l)"

# ---- an existing snapshot, a second bundle, the store unmounted ----
"$VMB_BIN" snapshot "$MNT" vm keep >/dev/null || fail "snapshot"
mkdir "$MNT/small"
echo hello >"$MNT/small/readme"
unmount_store
out=$("$VMB_BIN" publish --chunk-size=256K -q "$STORE" small vm@keep "$T/pub" 2>&1)
assert_eq "publish of an unmounted store, of a snapshot (exit 0, quiet)" "0:" "$?:$out"
check "... the snapshot given is left" test -f "$STORE/.vmbundlefs/snapshots/vm@keep"
assert_eq "... the temporary one is gone" "vm@keep" "$(ls "$STORE/.vmbundlefs/snapshots")"
assert_match "... both bundles listed" "^generation 4 bundles 2 objects" "$("$PC" "$T/pub")"
out=$(umask 077; "$VMB_BIN" publish --chunk-size=256K -q "$STORE" small "$T/pub077" 2>&1)
assert_eq "publish under umask 077 (exit 0)" "0:" "$?:$out"
assert_eq "... every directory 0755, every file 0644: a web server can serve them" "" \
    "$(find "$T/pub077" \( -type d ! -perm 0755 \) -o \( -type f ! -perm 0644 \) -printf '%m %p\n')"

# ---- signed ----
openssl genpkey -algorithm ed25519 -out "$T/key.pem" 2>/dev/null
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$T/other.pem" 2>/dev/null
openssl pkey -in "$T/other.pem" -pubout -out "$T/other.pub" 2>/dev/null
check "unsigned index refused with a key" sh -c "! '$PC' -k '$T/pub.pem' '$T/pub' 2>&1 | grep -q . || '$PC' -k '$T/pub.pem' '$T/pub' 2>&1 | grep -q 'not signed'"
out=$("$VMB_BIN" publish --chunk-size=256K --sign "$T/key.pem" "$STORE" small "$T/pub" 2>&1)
assert_match "publish --sign" "generation 5, signed" "$out"
assert_match "the signed index verifies" "generation 5 bundles 2 objects [0-9]+ signed" \
    "$("$PC" -k "$T/pub.pem" "$T/pub" 2>&1)"
head -n -1 "$T/pub/index" >"$T/signed-part"
tail -n 1 "$T/pub/index" | sed 's/^signature ed25519 //' | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' >"$T/sig"
check "... openssl verifies it too" openssl pkeyutl -verify -pubin -inkey "$T/pub.pem" -rawin -in "$T/signed-part" -sigfile "$T/sig"
assert_match "... not with another key" "bad signature" "$("$PC" -k "$T/other.pub" "$T/pub" 2>&1)"
cp "$T/pub/index" "$T/index.good"
sed -i 's/^generation 5$/generation 6/' "$T/pub/index"
assert_match "a changed byte of the index is refused" "end digest does not match" "$("$PC" -k "$T/pub.pem" "$T/pub" 2>&1)"
python3 - "$T/pub/index" <<'PY'
import hashlib, sys
t = open(sys.argv[1], 'rb').read()
body, rest = t.split(b'\nend ', 1)
body += b'\n'
sig = rest.split(b'\n', 1)[1]
open(sys.argv[1], 'wb').write(body + b'end ' + hashlib.sha256(body).hexdigest().encode() + b'\n' + sig)
PY
assert_match "... also with its end digest made right: the signature" "bad signature" "$("$PC" -k "$T/pub.pem" "$T/pub" 2>&1)"
cp "$T/index.good" "$T/pub/index"
cp -a "$T/pub/objects" "$T/objects.good"
find "$T/pub/objects" -type f -size +200k -exec dd if=/dev/zero of={} bs=1 count=1 seek=1000 conv=notrunc status=none \;
assert_match "a changed chunk is found" "does not match its digest" "$("$PC" "$T/pub" 2>&1)"
rm -rf "$T/pub/objects"
cp -a "$T/objects.good" "$T/pub/objects"
check "... and all is well again" "$PC" -k "$T/pub.pem" "$T/pub"

# ---- bad input: a clear error, DEST unchanged, no snapshot left ----
cp "$T/pub/index" "$T/index.before"
before=$(find "$T/pub" | sort | md5sum)
bad() {
    local desc=$1 want=$2 rc
    shift 2
    out=$("$VMB_BIN" publish --chunk-size=256K "$@" 2>&1)
    rc=$?
    assert_match "$desc (exit $rc)" "$want" "$out"
    check "... DEST unchanged" test "$(find "$T/pub" | sort | md5sum)" = "$before"
}
bad "no such bundle" "cannot snapshot bundle 'nope'" "$STORE" nope "$T/pub"
bad "no such snapshot" "no snapshot 'vm@nope'" "$STORE" vm@nope "$T/pub"
bad "a bundle twice" "twice" "$STORE" small small "$T/pub"
bad "a bad chunk size" "bad chunk size" --chunk-size=100K "$STORE" small "$T/pub"
bad "a key that is not one" "holds no PEM" --sign "$T/pub/index" "$STORE" small "$T/pub"
bad "a missing key" "cannot open key file" --sign "$T/none.pem" "$STORE" small "$T/pub"
bad "a URL the fetchers do not know" "expected file://, http://, https:// or s3://" "$STORE" small ftp://host/x
bad "an S3 server that does not answer" "cannot connect" -e http://127.0.0.1:1 "$STORE" small s3://bucket/prefix
out=$("$VMB_BIN" publish --chunk-size=256K "$STORE" small "$T/no/such/dir" 2>&1)
assert_match "a DEST whose parent is missing" "cannot create the destination" "$out"
out=$("$VMB_BIN" publish --chunk-size=256K "$STORE" small 2>&1)
assert_eq "too few arguments: usage (exit 2)" 2 "$?"
echo junk >"$T/pub/index"
out=$("$VMB_BIN" publish --chunk-size=256K "$STORE" small "$T/pub" 2>&1)
assert_match "a corrupt index at DEST is not replaced" "not a valid published index" "$out"
assert_eq "... it is still there" "junk" "$(cat "$T/pub/index")"
assert_eq "no temporary snapshot left after the failures" "vm@keep" "$(ls "$STORE/.vmbundlefs/snapshots")"
out=$("$VMB_BIN" publish "$STORE" vm@keep "$T/pubdef" 2>&1)
assert_match "without --chunk-size: 256 KiB chunks (256 for the 64 MiB image)" "of 256 chunks zero" "$out"
check "the store is clean (fsck -n)" "$VMB_BIN" fsck -n "$STORE"
finish
