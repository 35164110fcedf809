#!/bin/bash
# remote-lazy-parallel: the first lookups of two bundles of a URL mount are pulled
# side by side. A bundle whose pull waits for the network (here its manifest
# stalls for 8 s on our fault-injecting server; in hard mode, an outage) holds up
# the first lookup of no other bundle: before, every pull of the mount ran under
# one mutex, so one slow bundle kept every other first lookup (and ls -l of the
# root) waiting. Both bundles then read right, and two lookups of the one stalled
# bundle still pull it once.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
need_mkpub
for b in a b; do
    fill=1
    [ $b = b ] && fill=2
    mkdir -p "$T/src/$b"
    truncate -s 1M "$T/src/$b/disk.img"
    vmbio pwrite "$T/src/$b/disk.img" 65536 65536 $fill >/dev/null || fail "vmbio pwrite"
    printf '{"vm": "%s"}\n' "$b" >"$T/src/$b/config.json"
done
"$MKPUB" -c 65536 "$T/pub" "$T/src/a" "$T/src/b" >"$T/mkpub.out" 2>&1 ||
    { cat "$T/mkpub.out"; fail "mkpub failed"; }
MA=$(awk '$1 == "bundle" && $3 == "a" { print $2 }' "$T/pub/index")
[ -n "$MA" ] || fail "no manifest digest for bundle a in $T/pub/index"

faultsrv_start "$T/pub"
for mode in soft hard; do
    opts="cache=$T/cache-$mode"
    [ $mode = hard ] && opts="$opts,hard"
    rmount m-$mode "$FAULT_URL" -o "$opts"
    M=$T/m-$mode
    # a's manifest: its headers, then nothing for 8 s
    faultsrv_rules "stall at=0 secs=8 path=*/$MA"
    t0=$(date +%s%N)
    stat "$M/a/config.json" >"$T/a-$mode.out" 2>&1 &
    pa=$!
    stat "$M/a/disk.img" >"$T/a2-$mode.out" 2>&1 &
    pa2=$!
    sleep 1
    tb0=$(date +%s%N)
    check "$mode: bundle b is looked up while a's pull waits" stat "$M/b/config.json"
    tb=$((($(date +%s%N) - tb0) / 1000000))
    wait $pa; ra=$?
    wait $pa2; ra2=$?
    ta=$((($(date +%s%N) - t0) / 1000000))
    faultsrv_rules
    assert_eq "$mode: a's lookups succeed once its manifest comes" "0 0" "$ra $ra2"
    # the stall really held a's pull (else this round shows nothing)
    check "$mode: a's pull waited for its manifest (${ta} ms)" test "$ta" -ge 6000
    check "$mode: b's lookup did not wait for a's pull (${tb} ms)" test "$tb" -lt 4000
    check "$mode: a's bytes" cmp "$M/a/disk.img" "$T/src/a/disk.img"
    check "$mode: b's bytes" cmp "$M/b/disk.img" "$T/src/b/disk.img"
    n=$(grep -c "GET [^ ]*$MA " "$FAULT_LOG" || true)
    rumount m-$mode || notok "$mode: the daemon exits cleanly"
    : >"$FAULT_LOG"
    assert_eq "$mode: a's manifest fetched once for two lookups" 1 "$n"
done
finish
