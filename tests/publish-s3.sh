#!/bin/sh
# vmbundlefs publish to s3://BUCKET/PREFIX (issue 11): s3rver from the npm registry
# behind tests/helpers/s3sigv4.js (which checks every SigV4 signature and payload
# hash), on loopback, through --endpoint. The published store reads back whole
# through the s3 fetcher (tests/helpers/pubcheck checks every digest and the
# signature); a republish HEADs every object and PUTs only the index (and the
# bundle's manifest); a republish after a change PUTs about the change; every
# request is signed; wrong credentials fail clearly and leave the index as it was.
# Exits 77 without node or s3rver (contrib/setup.sh test installs them).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup nofuse
NPMDIR=${VMB_NPM_DIR:-/var/tmp/vmbundlefs-npm}
FRONT=$VMB_SRCDIR/tests/helpers/s3sigv4.js
PC=$VMB_TESTBIN/helpers/pubcheck
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs npm)"
[ -f "$NPMDIR/node_modules/s3rver/package.json" ] ||
    skip "s3rver is not installed in $NPMDIR (contrib/setup.sh test installs it with npm)"
command -v openssl >/dev/null || skip "openssl is not installed"
M=$((1024 * 1024))

unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE \
    AWS_REGION AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE
export HOME=$T/home
mkdir -p "$HOME" "$T/data"
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000)))
NODE_PATH=$NPMDIR/node_modules node "$FRONT" "$T/data" "$P" vmbtest "$T/req.log" >"$T/s3rver.log" 2>&1 &
spid=$!
on_exit "kill $spid 2>/dev/null; wait $spid 2>/dev/null"
for _ in $(seq 300); do
    grep -q ready "$T/s3rver.log" && break
    kill -0 $spid 2>/dev/null || break
    sleep 0.1
done
grep -q ready "$T/s3rver.log" || { cat "$T/s3rver.log"; hard_error "s3rver did not start"; }
E=http://127.0.0.1:$P
U=s3://vmbtest/pub/v1
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER

# A store (not mounted) with a bundle: 8 MiB of data in a 64 MiB image, a config.
mkdir "$STORE/vm"
truncate -s 64M "$STORE/vm/disk.img"
head -c $((8 * M)) /dev/urandom | dd of="$STORE/vm/disk.img" bs=1M seek=20 conv=notrunc status=none
printf 'cpus 2\n' >"$STORE/vm/config"
cp --sparse=always "$STORE/vm/disk.img" "$T/disk.orig"   # the file becomes a delta once snapshotted
openssl genpkey -algorithm ed25519 -out "$T/key.pem" 2>/dev/null
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.pem" 2>/dev/null

out=$("$VMB_BIN" publish --chunk-size=256K --sign "$T/key.pem" --endpoint "$E" "$STORE" vm "$U" 2>&1)
assert_eq "publish to s3:// through --endpoint (exit 0)" 0 $? || say "$out"
assert_match "... a summary: 32 chunks written" "generation 1, signed\): .* 3[5-9] objects written" "$out"
assert_eq "... every request signed and accepted" "" "$(grep -v ' 20[0-9] signed' "$T/req.log" | grep -v ' 404 signed')"
assert_match "the published store reads back through the s3 fetcher, every digest right, signed" \
    "^generation 1 bundles 1 objects [0-9]+ signed$" "$("$PC" -e "$E" -k "$T/pub.pem" "$U" 2>&1)"
"$PC" -e "$E" "$U" vm disk.img "$T/disk.out" >/dev/null
check "... the image byte for byte" cmp "$T/disk.orig" "$T/disk.out"
"$PC" -e "$E" "$U" vm config "$T/config.out" >/dev/null
check "... the config" cmp "$STORE/vm/config" "$T/config.out"

"$VMB_BIN" snapshot "$STORE" vm s1 >/dev/null || fail "snapshot"
: >"$T/req.log"
out=$("$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm@s1 "$U" 2>&1)
assert_match "a republish (of a snapshot of the same) PUTs the index and the manifest only" \
    "generation 2\): .* 2 objects written" "$out"
assert_eq "... 2 PUTs" 2 "$(grep -c '^PUT ' "$T/req.log")"
check "... the rest found by HEAD" test "$(grep -c '^HEAD ' "$T/req.log")" -ge 30

# a damaged object (other bytes, same length, PUT by someone else): its ETag is
# not the MD5 of the right bytes, so a republish finds it and PUTs it again
c=$(dd if="$T/disk.orig" bs=256K skip=80 count=1 status=none | sha256sum | cut -d' ' -f1)
dd if="$T/disk.orig" of="$T/bad" bs=256K skip=80 count=1 status=none
printf 'X' | dd of="$T/bad" bs=1 seek=100 conv=notrunc status=none
curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $(sha256sum "$T/bad" | cut -d' ' -f1)" -T "$T/bad" \
    "$E/vmbtest/pub/v1/objects/${c:0:2}/$c" >/dev/null || fail "cannot PUT the damaged object"
check_fails "the damaged object is found by a reader" "$PC" -e "$E" "$U"
: >"$T/req.log"
out=$("$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm@s1 "$U" 2>&1)
assert_match "a republish repairs it (ETag against MD5)" \
    "generation 3\): .* 2 objects written .* 1 damaged at DEST repaired" "$out"
assert_eq "... 2 PUTs (it and the index)" 2 "$(grep -c '^PUT ' "$T/req.log")"
check "... a reader finds every digest right again" "$PC" -e "$E" "$U"
"$PC" -e "$E" "$U" vm disk.img "$T/disk.rep" >/dev/null
check "... the image byte for byte" cmp "$T/disk.orig" "$T/disk.rep"
: >"$T/req.log"
out=$("$VMB_BIN" publish --verify --chunk-size=256K -e "$E" "$STORE" vm@s1 "$U" 2>&1)
assert_match "--verify: nothing damaged" "generation 4\): .* 1 objects written .*zero$" "$out"
check "... GETs every object there" test "$(grep -c '^GET .*objects/' "$T/req.log")" -ge 30

# change 1 MiB in the middle of the data, republish: about 1 MiB
dd if=/dev/urandom of="$T/chg" bs=1M count=1 status=none
"$VMB_BIN" clone "$STORE" vm vm2 >/dev/null || fail "clone"
dd if="$T/chg" of="$STORE/vm2/disk.img" bs=1M seek=24 conv=notrunc status=none 2>/dev/null ||
    skip "cannot write the clone's image directly"
: >"$T/req.log"
out=$("$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm2 "$U" 2>&1)
assert_eq "publish of a changed copy (exit 0)" 0 $? || say "$out"
assert_eq "... 7 PUTs" 7 "$(grep -c '^PUT ' "$T/req.log")"
assert_match "... PUTs its 4 new chunks and 3 small objects" "generation 5\): .* 7 objects written \(1\.[01] MiB\)" "$out"
cp "$T/disk.orig" "$T/disk2.want"
dd if="$T/chg" of="$T/disk2.want" bs=1M seek=24 conv=notrunc status=none
"$PC" -e "$E" "$U" vm2 disk.img "$T/disk2.out" >/dev/null
check "... which read back as the changed image" cmp "$T/disk2.want" "$T/disk2.out"
assert_match "both bundles listed" "^generation 5 bundles 2 objects" "$("$PC" -e "$E" "$U" 2>&1)"

# wrong credentials: a clear error, the index unchanged
"$PC" -e "$E" "$U" >"$T/before"
out=$(AWS_SECRET_ACCESS_KEY=wrong "$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm "$U" 2>&1)
assert_eq "a wrong secret fails (exit 1)" 1 $?
assert_match "... saying why" "SignatureDoesNotMatch" "$out"
check "... the index unchanged" cmp "$T/before" <("$PC" -e "$E" "$U")
assert_eq "... no temporary snapshot left" "vm@s1" "$(ls "$STORE/.vmbundlefs/snapshots")"
out=$("$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm "$T/dir" 2>&1)
assert_eq "--endpoint with a directory is a usage error (exit 2)" 2 $?

# two publishes to the same prefix at once (S3 has no lock): the first stops
# right after reading the index (VMB_OP_STOP_AT=publish:2), the second publishes
# a new bundle meanwhile; the first, let go, keeps it in the index
mkdir "$STORE/vm3"
printf 'cpus 1\n' >"$STORE/vm3/config"
"$PC" -e "$E" "$U" >"$T/before"
VMB_OP_STOP_AT=publish:2 "$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm "$U" >"$T/a.out" 2>"$T/a.err" &
a=$!
on_exit "kill -9 $a 2>/dev/null"
for _ in $(seq 200); do
    [ "$(awk '{print $3}' /proc/$a/stat 2>/dev/null)" = T ] && break
    sleep 0.05
done
assert_eq "a publish stopped after reading the index" T "$(awk '{print $3}' /proc/$a/stat 2>/dev/null)"
out=$("$VMB_BIN" publish --chunk-size=256K -e "$E" "$STORE" vm3 "$U" 2>&1)
assert_eq "another publish to the same prefix meanwhile (exit 0)" 0 $? || say "$out"
assert_match "... generation 6, 3 bundles" "^generation 6 bundles 3 " "$("$PC" -e "$E" "$U" 2>&1)"
kill -CONT $a
wait $a
assert_eq "the first, let go, succeeds" 0 $? || cat "$T/a.err"
assert_match "... says it kept the other's bundles" "another publish replaced the index .* its bundles are kept" "$(cat "$T/a.err")"
assert_match "... generation 7" "generation 7\)" "$(cat "$T/a.out")"
assert_match "... the index lists all 3 bundles (vm3 kept)" "^generation 7 bundles 3 " "$("$PC" -e "$E" "$U" 2>&1)"
"$PC" -e "$E" "$U" vm3 config "$T/vm3.out" >/dev/null
check "... vm3 reads back" cmp "$STORE/vm3/config" "$T/vm3.out"
finish
