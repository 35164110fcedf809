#!/bin/bash
# remote-kill: kill -9 in the middle of fetching. (1) The daemon of a URL mount,
# while readers fetch slowly sent chunks: the cache holds only whole verified chunks
# (no partial chunk is ever taken for one), a remount on the same cache reads every
# block correctly and fetches none of the chunks already cached. (2) `prefetch` on a
# pulled bundle's store (the command fills the cache itself): after the kill the
# cache is consistent, a second prefetch completes without fetching again what was
# cached, and the store's mount reads the image correctly.
# VMB_REMOTE_LONG=1: kill at 4 different moments.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli pull prefetch
remote_fixture
faultsrv_start "$PUB"
URL=$FAULT_URL
IMG=vm/disk.img

# fetched_again MARK CACHE_LIST: objects fetched (200) after line MARK of the log
# that were in the cache list (digests) taken before.
fetched_again() {
    tail -n +$(($1 + 1)) "$FAULT_LOG" | awk '$1 == "GET" && $4 == 200 { n = split($2, p, "/"); print p[n] }' |
        sort -u | comm -12 - <(sort -u "$2")
}
cached_list() { find "$1/chunks" -type f -printf '%f\n' 2>/dev/null | sort; }
# Fetches are counted after log_mark (remote-lib.sh): a GET of the killed process
# logged late would otherwise look like a fetch by the next one.

waits="1.5"
[ -n "${VMB_REMOTE_LONG:-}" ] && waits="0.3 1 2 3"
n=0
for w in $waits; do
    n=$((n + 1))
    C=$T/cache$n
    # (1) the daemon
    faultsrv_rules
    rmount d$n "$URL" -o "cache=$C"
    faultsrv_rules "slow path=/objects/* rate=524288"
    "$RCMP" -j 4 -b 65536 "$T/d$n/$IMG" "$REF" >"$T/reader.out" 2>&1 &
    rp=$!
    sleep "$w"
    rkill d$n
    wait $rp
    assert_match "daemon killed after $w s: the reader saw no wrong bytes" 'wrong=0' "$(cat "$T/reader.out")"
    out=$(cache_verify "$C")
    assert_match "daemon killed after $w s: the cache holds only verified chunks ($out)" '^[0-9]+$' "$out"
    cached_list "$C" >"$T/cached"
    faultsrv_rules
    mark=$(log_mark)
    rmount d$n.2 "$URL" -o "cache=$C"
    out=$("$RCMP" -s -j 2 -b 65536 "$T/d$n.2/$IMG" "$REF")
    assert_eq "daemon killed after $w s: remounted, every block correct (2 readers)" "ok=512 eio=0 wrong=0 err=0" "$out"
    assert_eq "daemon killed after $w s: nothing cached before was fetched again" "" "$(fetched_again "$mark" "$T/cached")"
    rumount d$n.2 || notok "daemon killed after $w s: the second daemon exits cleanly"
    assert_match "daemon killed after $w s: the cache still verifies" '^[0-9]+$' "$(cache_verify "$C")"

    # (2) prefetch on a pulled bundle in a store that is not mounted
    C=$T/pcache$n
    S=$T/pstore$n
    "$VMB_BIN" init "$S" >/dev/null || fail "init $S"
    faultsrv_rules
    check "prefetch round $n: pull" "$VMB_BIN" pull -o "cache=$C" "$S" "$URL#vm"
    faultsrv_rules "slow path=/objects/* rate=524288"
    "$VMB_BIN" prefetch -o "cache=$C" "$S/$IMG" >"$T/prefetch.out" 2>&1 &
    pp=$!
    sleep "$w"
    kill -9 $pp
    wait $pp 2>/dev/null
    out=$(cache_verify "$C")
    assert_match "prefetch killed after $w s: the cache holds only verified chunks ($out)" '^[0-9]+$' "$out"
    cached_list "$C" >"$T/cached"
    faultsrv_rules
    mark=$(log_mark)
    check "prefetch killed after $w s: a second prefetch completes" "$VMB_BIN" prefetch -o "cache=$C" "$S/$IMG"
    assert_eq "prefetch killed after $w s: it fetched nothing cached before" "" "$(fetched_again "$mark" "$T/cached")"
    faultsrv_stop   # everything must now come from the cache
    STORE=$S
    mount_store -o "cache=$C"
    out=$("$RCMP" -s -j 2 -b 65536 "$MNT/$IMG" "$REF")
    assert_eq "prefetch killed after $w s: the store's mount reads every block from the cache, server stopped" \
        "ok=512 eio=0 wrong=0 err=0" "$out"
    unmount_store
    faultsrv_start "$PUB"
    URL=$FAULT_URL
done
finish
