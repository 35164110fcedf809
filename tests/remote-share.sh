#!/bin/bash
# remote-share: one cold image read at once by 8 readers in 3 processes through 2
# mounts of the same URL sharing one cache, plus a `vmbundlefs prefetch` of it: every
# reader reads correct bytes, and the server's access log shows each object (data
# chunks, manifests, image index, small files) fetched exactly once; the identical
# chunk at 12 MiB is not fetched apart from chunk 0. The server sends slowly
# (faultsrv's slow rule) so that the fetches of the readers overlap.
# VMB_REMOTE_LONG=1: 5 rounds with fresh caches.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli prefetch
remote_fixture
N_OBJECTS=$(find "$PUB/objects" -type f | wc -l)
faultsrv_start "$PUB"
URL=$FAULT_URL
IMG=vm/disk.img

# log_settled: wait until the access log has a GET of every object (30 s at most),
# then until it is quiet (log_mark): faultsrv logs a slow body after its pacing, so
# counted at once the log may miss fetches that were made, and a fetch made twice
# may not show yet.
all_fetched() { [ "$(log_fetches "$FAULT_LOG" | grep -c objects/)" -ge "$N_OBJECTS" ]; }
log_settled() {
    wait_for 30 all_fetched
    log_mark >/dev/null
}

rounds=1
[ -n "${VMB_REMOTE_LONG:-}" ] && rounds=5
for r in $(seq 1 $rounds); do
    C=$T/cache$r
    : >"$FAULT_LOG"
    faultsrv_rules "slow path=/objects/* rate=4194304"
    rmount a$r "$URL" -o "cache=$C"
    rmount b$r "$URL" -o "cache=$C"
    "$RCMP" -s -j 3 -b 65536 "$T/a$r/$IMG" "$REF" >"$T/r1.out" 2>&1 &
    p1=$!
    "$RCMP" -s -j 3 -b 65536 "$T/b$r/$IMG" "$REF" >"$T/r2.out" 2>&1 &
    p2=$!
    "$RCMP" -s -r -j 2 -b 131072 "$T/a$r/$IMG" "$REF" >"$T/r3.out" 2>&1 &
    p3=$!
    "$VMB_BIN" prefetch "$T/b$r/$IMG" >"$T/prefetch.out" 2>&1 &
    p4=$!
    wait $p1; rc1=$?
    wait $p2; rc2=$?
    wait $p3; rc3=$?
    wait $p4; rc4=$?
    assert_eq "round $r: process 1 (3 readers, mount a): correct" "0 ok=768 eio=0 wrong=0 err=0" "$rc1 $(cat "$T/r1.out")"
    assert_eq "round $r: process 2 (3 readers, mount b): correct" "0 ok=768 eio=0 wrong=0 err=0" "$rc2 $(cat "$T/r2.out")"
    assert_eq "round $r: process 3 (2 readers backwards, mount a): correct" "0 ok=256 eio=0 wrong=0 err=0" "$rc3 $(cat "$T/r3.out")"
    assert_eq "round $r: prefetch succeeded" "0" "$rc4"
    faultsrv_rules
    log_settled
    fetched=$(log_fetches "$FAULT_LOG")
    twice=$(printf '%s\n' "$fetched" | awk '$1 != 1')
    assert_eq "round $r: no object fetched more than once" "" "$twice"
    assert_eq "round $r: every object of the store fetched (data chunks, manifests, index, small files)" \
        "$N_OBJECTS" "$(printf '%s\n' "$fetched" | grep -c objects/)"
    bad=$(awk '$2 ~ /\/objects\// && $4 != 200 { print }' "$FAULT_LOG")
    assert_eq "round $r: no partial or failed object request" "" "$bad"
    rumount a$r || notok "round $r: daemon a exits cleanly"
    rumount b$r || notok "round $r: daemon b exits cleanly"
    out=$(cache_verify "$C")
    assert_num "round $r: the cache's chunks all verify, each data chunk there ($out >= $N_OBJ_CHUNKS)" "$out" -ge "$N_OBJ_CHUNKS"
    assert_num "round $r: ... no more than the store's objects ($out <= $N_OBJECTS)" "$out" -le "$N_OBJECTS"
done
check "faultsrv survived" faultsrv_clean
finish
