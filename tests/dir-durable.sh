#!/bin/sh
# dir-durable.sh - a directory the cache (or the store) makes has its entry made
# durable (an fsync of the directory that holds it) before anything in it counts
# as durable
# (issue 11 §5: a chunk is present only once durable). Without it a power loss
# can take a new chunks/<aa> with every object linked in it, though the flusher
# fsynced each object and chunks/<aa> itself: an object pinned then, whose remote
# is gone, would be lost. Seen through strace -y: the cache directory, its
# subdirectories, each chunks/<aa> and meta/<aa> made by a pull and a prefetch,
# the store's layers/ and snapshots/ (made when first needed), and what a publish
# to a file:// URL makes (the destination, objects/, objects/<aa>); for each, an
# fsync of its parent after the mkdir, and for chunks/<aa> before the flusher
# releases the fill lock of an object linked in it (what makes it present to
# other processes). No mount needed.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup nofuse
command -v strace >/dev/null 2>&1 || skip "strace is not installed (contrib/setup.sh installs it)"
need_mkpub

SRC=$T/src/vm
mkdir -p "$SRC"
truncate -s 8M "$SRC/disk.img"
for i in $(seq 0 23); do   # 24 data chunks of 64 KiB, each its own bytes
    vmbio pwrite "$SRC/disk.img" $((i * 327680)) 65536 "p$((i + 1))" >/dev/null ||
        fail "vmbio pwrite"
done
printf '{"cpu": 2}\n' >"$SRC/config.json"
"$MKPUB" -c 65536 "$T/pub" "$SRC" >"$T/mkpub.out" 2>&1 || { cat "$T/mkpub.out"; fail "mkpub failed"; }
C=$T/caches/c   # made by the pull, its parent too (the way mkdir -p makes it)

ST=$T/strace.out
# LeakSanitizer cannot run under ptrace (a sanitizer build would fail with exit
# 86): leaks are checked where these commands run untraced (remote-pull.sh,
# ctl-snapshot.sh...); the other sanitizer checks stay on
run_traced() {
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -y -qq -o "$ST.$1" -e trace=mkdir,mkdirat,fsync,fcntl "${@:2}"
}
check "pull (strace -f)" run_traced pull "$VMB_BIN" pull -o cache="$C" "$STORE" "file://$T/pub#vm"
check "prefetch (strace -f)" run_traced prefetch "$VMB_BIN" prefetch -o cache="$C" "$STORE/vm/disk.img"
assert_num "objects in the cache (24 data chunks, the config)" \
    "$(find "$C/chunks" -type f | wc -l)" -ge 25
check "snapshot (strace -f)" run_traced snap "$VMB_BIN" snapshot "$STORE" vm s1
# publish to a file:// URL (the fetchers' PUT) makes objects/ and objects/<aa>
# under a destination whose parent does not exist yet either
# (a bundle of the store's own: a pulled one is published once flattened)
mkdir "$STORE/loc"
printf '{"cpu": 1}\n' >"$STORE/loc/config.json"
truncate -s 4M "$STORE/loc/disk.img"
for i in 0 1 2 3; do
    vmbio pwrite "$STORE/loc/disk.img" $((i * 1048576)) 65536 "p$((i + 40))" >/dev/null || fail "vmbio pwrite"
done
O=$T/out/pub
check "publish to file:// (strace -f)" run_traced pub "$VMB_BIN" publish "$STORE" loc "file://$O"
# ... and to a directory given as a path (the destination, objects/, objects/<aa>)
check "publish to a directory (strace -f)" run_traced pubdir "$VMB_BIN" publish "$STORE" loc "${O%/*}/dir"
cat "$ST.pull" "$ST.prefetch" "$ST.snap" "$ST.pub" "$ST.pubdir" >"$ST"

# every mkdir of the cache's: its path, its parent (strace -y prints an fd's path)
# (with the parent the cache's path lacked), and the store's layers/ and
# snapshots/, made by the first pull and snapshot
mk=$(awk -v c="$C" -v cp="${C%/*}" -v m="$STORE/.vmbundlefs" -v o="${O%/*}" '
    /mkdir\("/ && / = 0$/ { if (match($0, /mkdir\("[^"]*"/)) { p = substr($0, RSTART + 7, RLENGTH - 8); if (index(p, c) == 1 || p == cp || index(p, o) == 1) print p } }
    /mkdirat\(/ && / = 0$/ { if (match($0, /<[^>]*>, "[^"]*"/)) { s = substr($0, RSTART + 1, RLENGTH - 2); split(s, a, ">, \""); p = a[1] "/" a[2]
        if (index(a[1], c) == 1 || index(a[1], o) == 1 || p == m "/layers" || p == m "/snapshots") print p } }' "$ST")
n=$(printf '%s\n' "$mk" | grep -c .)
nchunkdirs=$(printf '%s\n' "$mk" | grep -c "^$C/chunks/..\$")
assert_num "directories the cache made (the cache, its subdirectories, chunks/<aa>)" "$n" -ge 8
assert_num "of them chunks/<aa>" "$nchunkdirs" -ge 4
assert_eq "the parent the cache's path lacked among them" "1" \
    "$(printf '%s\n' "$mk" | grep -c "^${C%/*}\$")"
assert_num "directories publish made under file:// (out/, out/pub/, objects/, objects/<aa>...)" \
    "$(printf '%s\n' "$mk" | grep -c "^$O")" -ge 4
assert_num "... and in a directory (out/dir/, objects/, objects/<aa>...)" \
    "$(printf '%s\n' "$mk" | grep -c "^${O%/*}/dir")" -ge 3
assert_eq "the store's layers/ and snapshots/ among them" "2" \
    "$(printf '%s\n' "$mk" | grep -c "^$STORE/.vmbundlefs/\(layers\|snapshots\)\$")"

# for each: a later fsync, in the same process, of the directory that holds it
bad=$(awk -v list="$mk" '
    BEGIN { n = split(list, d, "\n"); for (i = 1; i <= n; i++) { want[d[i]] = 1 } }
    / mkdir\("/ && / = 0$/ { match($0, /mkdir\("[^"]*"/); p = substr($0, RSTART + 7, RLENGTH - 8)
        if (p in want) { pend[$1 SUBSEP parent(p)] = pend[$1 SUBSEP parent(p)] " " p } next }
    /mkdirat\(/ && / = 0$/ { match($0, /<[^>]*>, "[^"]*"/); s = substr($0, RSTART + 1, RLENGTH - 2)
        split(s, a, ">, \""); p = a[1] "/" a[2]
        if (p in want) { made[p] = $1; par[p] = a[1] } next }
    / fsync\([0-9]+</ { match($0, /<[^>]*>/); f = substr($0, RSTART + 1, RLENGTH - 2)
        for (p in made) if (par[p] == f) { synced[p] = 1 }
        for (k in pend) { split(k, q, SUBSEP); if (q[2] == f) { split(pend[k], l, " "); for (j in l) synced[l[j]] = 1; delete pend[k] } }
        next }
    / fcntl\(.*F_UNLCK/ { for (p in made) if (made[p] == $1 && p ~ /\/chunks\/..$/ && !(p in synced) && !(p in late)) late[p] = 1 }
    function parent(x) { sub(/\/[^\/]*$/, "", x); return x }
    END { for (p in want) if (p != "" && !(p in synced)) print "not synced: " p
          for (p in late) print "lock released before its parent was synced: " p }' "$ST")
assert_eq "each directory made has its parent fsynced (chunks/<aa>: before the fill lock is released)" "" "$bad"

finish
