#!/bin/bash
# remote-signal: a URL mount's daemon stopped by SIGTERM (or SIGINT) while readers hold
# its image open and fetches are in flight (slowly sent chunks), and once more with the
# image open but idle, frees its remote state (fetch workers, readahead, the cache's
# handles) and the readers' handles and exits 0: nothing for LeakSanitizer in the
# sanitizer build. A remount on the same cache reads every block right.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli
remote_fixture
faultsrv_start "$PUB"
IMG=vm/disk.img

# stopped NAME SIG: signal the daemon of $T/NAME; it exits 0 within 30 s, its mount
# gone, no sanitizer report.
stopped() {
    local name=$1 sig=$2 i
    kill -"$sig" "$(cat "$T/$name.pid")" || return 1
    for i in $(seq 1 300); do [ -e "$T/$name.rc" ] && break; sleep 0.1; done
    [ -e "$T/$name.rc" ] || { say "no exit within 30 s of SIG$sig"; return 1; }
    ! is_mounted "$T/$name" || { say "still mounted"; return 1; }
    rumount "$name"
}

n=0
for sig in TERM INT; do
    n=$((n + 1))
    C=$T/cache$n
    faultsrv_rules "slow path=/objects/* rate=524288"
    rmount s$n "$FAULT_URL" -o "cache=$C"
    "$RCMP" -j 4 -b 65536 "$T/s$n/$IMG" "$REF" >"$T/reader$n.out" 2>&1 &
    rp=$!
    exec 3<"$T/s$n/vm/nvram.bin"
    sleep 1.5
    check "SIG$sig with fetches in flight and the image open: exit 0, nothing leaked" stopped s$n $sig
    exec 3<&-
    wait $rp
    assert_match "SIG$sig: the readers saw no wrong bytes" 'wrong=0' "$(cat "$T/reader$n.out")"

    # idle: everything read, the image still open
    faultsrv_rules
    rmount i$n "$FAULT_URL" -o "cache=$C"
    out=$("$RCMP" -s -j 2 -b 65536 "$T/i$n/$IMG" "$REF")
    assert_eq "SIG$sig: remounted on the same cache, every block right" "ok=512 eio=0 wrong=0 err=0" "$out"
    exec 3<"$T/i$n/$IMG"
    check "SIG$sig with the image open and idle: exit 0, nothing leaked" stopped i$n $sig
    exec 3<&-
    assert_match "SIG$sig: the cache verifies" '^[0-9]+$' "$(cache_verify "$C")"
done
finish
