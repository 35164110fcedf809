#!/bin/sh
# remote-mirror-hard.sh - hard mode (-o hard) over a remote layer with a mirror:
# a read whose first URL keeps failing for a cause that may pass (HTTP 503 from
# tests/helpers/faultsrv) is served by the mirror once the first URL's soft retry
# budget runs out, instead of waiting for the first URL forever; with every URL
# failing the read waits (hard mode), the log says so, and it completes with the
# right bytes as soon as one URL comes back; a reader killed while it waits ends.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
need_mkpub
export VMB_TEST_MOUNT_OPTS="cache=$T/cache,hard"
export VMBUNDLEFS_CACHE=$T/cache

SRC=$T/src/vm
mkdir -p "$SRC"
truncate -s 16M "$SRC/disk.img"
vmbio pwrite "$SRC/disk.img" 0 1048576 p3 >/dev/null
vmbio pwrite "$SRC/disk.img" 8388608 262144 p4 >/dev/null
printf '{"cpu": 2}\n' >"$SRC/config.json"
"$MKPUB" -c 65536 "$T/pubA" "$SRC" || hard_error "mkpub A failed"
"$MKPUB" -c 65536 "$T/pubB" "$SRC" || hard_error "mkpub B failed"
faultsrv_start "$T/pubA"
A=$FAULT_URL B="file://$T/pubB"

check "pull A#vm as a (A: http, faultsrv)" "$VMB_BIN" pull "$STORE" "$A#vm" a
check "pull B#vm as b (the same image: B becomes a mirror)" "$VMB_BIN" pull "$STORE" "$B#vm" b
assert_match "deps of a: B is a mirror" "^mirror [0-9a-f]{32} $B\$" "$("$VMB_BIN" deps "$STORE" a)"

# ---- A answers 503 to everything: the read comes from B ----
faultsrv_rules "503"
mount_store
check "A failing (503), hard mode: a reads right, from B, within 60 s" \
    timeout 60 cmp "$SRC/disk.img" "$MNT/a/disk.img"
sleep 0.2
assert_eq "one log line says the reads moved to B" "1" "$(grep -c "reading from '$B'" "$T/log")"
assert_match "... naming A's error" "reading from '$B' \\(cannot fetch '$A/objects/.*HTTP 503" \
    "$(grep "reading from" "$T/log")"
unmount_store

# ---- A failing and B gone: the read waits, then B comes back ----
mv "$T/pubB" "$T/pubB.away"
rm -rf "$T/cache/chunks"
: >"$T/log"
mount_store
( cmp "$SRC/disk.img" "$MNT/a/disk.img" >"$T/cmp.out" 2>&1; echo $? >"$T/cmp.rc" ) &
reader=$!
check "the log says it waits for the network (hard mode)" \
    wait_for 30 grep -q "retrying until it works (hard mode)" "$T/log"
assert_eq "... once for the image, however many chunks wait" 1 \
    "$(grep -c "retrying until it works (hard mode)" "$T/log")"
assert_match "... naming both URLs' errors" "HTTP 503.*and from its 1 other URL: .*$B" \
    "$(grep "retrying until it works" "$T/log" | head -n 1)"
sleep 2
check "with every URL failing, the reader still waits" test ! -e "$T/cmp.rc"
mv "$T/pubB.away" "$T/pubB"
check "B back: the read completes" wait_for 30 test -e "$T/cmp.rc"
assert_eq "... with the right bytes" "0" "$(cat "$T/cmp.rc" 2>/dev/null)"
wait $reader 2>/dev/null
assert_eq "the log says once that B answers again" 1 \
    "$(grep -c "'$B' answers again after [0-9]* s" "$T/log")"
unmount_store

# ---- every URL failing: a reader killed while it waits ends ----
mv "$T/pubB" "$T/pubB.away"
rm -rf "$T/cache/chunks"
mount_store
"$VMBIO" read "$MNT/a/disk.img" >"$T/read.out" 2>&1 &
reader=$!
sleep 3
check "the reader waits" kill -0 $reader
kill -TERM $reader
check "killed, it ends within 10 s" wait_for 10 sh -c "! kill -0 $reader 2>/dev/null"
wait $reader 2>/dev/null
unmount_store
mv "$T/pubB.away" "$T/pubB"
faultsrv_rules
check "the cache holds no wrong bytes" "$VMB_BIN" fsck -n --cache="$T/cache"
check "faultsrv did not crash" faultsrv_clean
finish
