#!/bin/bash
# remote-faults: a published store mounted from our fault-injecting server
# (tests/helpers/faultsrv). For each fault (dropped connection before and after the
# headers, reset, truncated body, a flipped byte, 500, 503, a stall, a slow body) on
# every other object fetch, 4 readers read the whole image on a cold cache: every
# block read is correct or EIO, never wrong bytes; then, faults off, everything reads
# correctly through the same mount and the cache holds only verified chunks (the
# cache is never poisoned). With every fetch of a data chunk failing (a flipped
# byte, 503), reads fail with EIO, a log line names the object, and once the server
# behaves every block reads correctly (no failure is cached). The bundle is pulled
# into the mount at its first lookup, before the faults (the rounds are about
# image reads); with every object failing, that lookup fails with EIO and a log
# line naming the bundle, and succeeds once the server behaves; with every other
# object damaged, it succeeds (a damaged manifest or index is fetched again).
# VMB_REMOTE_LONG=1: every fault also with prob=0.3 on 3 seeds.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli
remote_fixture
faultsrv_start "$PUB" -s 3
URL=$FAULT_URL
IMG=vm/disk.img

# round NAME RULE: one cold mount under RULE, then the same mount with faults off
n=0
round() {
    local name=$1 rule=$2 out
    n=$((n + 1))
    faultsrv_rules
    rmount m$n "$URL" -o "cache=$T/cache$n"
    stat "$T/m$n/$IMG" >/dev/null || notok "$name: the first lookup pulls the bundle"
    faultsrv_rules "$rule"
    out=$("$RCMP" -j 4 -b 65536 "$T/m$n/$IMG" "$REF")
    assert_match "$name: 4 readers, correct bytes or EIO ($out)" '^ok=[0-9]+ eio=[0-9]+ wrong=0 err=0$' "$out"
    faultsrv_rules
    out=$("$RCMP" -s -j 2 -b 65536 "$T/m$n/$IMG" "$REF")
    assert_eq "$name: faults off, every block correct through the same mount (2 readers)" "ok=512 eio=0 wrong=0 err=0" "$out"
    check "$name: small files correct" bash -c "cmp '$T/m$n/vm/config' '$SRC/config' && cmp '$T/m$n/vm/nvram' '$SRC/nvram'"
    rumount m$n || notok "$name: the daemon exits cleanly"
    out=$(cache_verify "$T/cache$n")
    assert_match "$name: the cache holds only verified chunks ($out)" '^[0-9]+$' "$out"
}

round "drop before headers" "drop-before path=/objects/* every=2"
round "drop after headers" "drop-after path=/objects/* every=2"
round "reset" "reset path=/objects/* every=2"
round "truncated body" "truncate path=/objects/* every=2"
round "flipped byte" "flip path=/objects/* every=2"
round "500" "500 path=/objects/* every=2"
round "503" "503 path=/objects/* every=2"
round "stall 2 s mid-body" "stall secs=2 path=/objects/* every=3"
round "slow body" "slow rate=1048576 path=/objects/* every=2"
if [ -n "${VMB_REMOTE_LONG:-}" ]; then
    for seed in 1 2 3; do
        faultsrv_stop
        faultsrv_start "$PUB" -s $seed
        URL=$FAULT_URL
        for f in drop-before drop-after reset truncate flip 500 503 "stall secs=1" "slow rate=500000"; do
            round "prob=0.3 $f (seed $seed)" "$f path=/objects/* prob=0.3"
        done
    done
fi

# Faults before the first lookup: the pull's manifest and image index (and its
# small files) come through a server that damages every other object it sends;
# a damaged manifest or index is fetched once more, as a chunk is, so the lookup
# succeeds and every byte is right.
n=$((n + 1))
faultsrv_rules
rmount m$n "$URL" -o "cache=$T/cache$n"
faultsrv_rules "flip path=/objects/* every=2"
check "flip before the lookup: the bundle is pulled (damaged objects fetched again)" \
    stat "$T/m$n/$IMG"
check "flip before the lookup: its small files are right" \
    bash -c "cmp '$T/m$n/vm/config' '$SRC/config' && cmp '$T/m$n/vm/nvram' '$SRC/nvram'"
faultsrv_rules
out=$("$RCMP" -s -j 2 -b 65536 "$T/m$n/$IMG" "$REF")
assert_eq "flip before the lookup: faults off, every block correct" "ok=512 eio=0 wrong=0 err=0" "$out"
rumount m$n || notok "flip before the lookup: the daemon exits cleanly"

# Every data chunk fetch fails: EIO, a log line, and nothing bad is cached.
for rule in "flip" "503"; do
    n=$((n + 1))
    faultsrv_rules
    rmount m$n "$URL" -o "cache=$T/cache$n"
    faultsrv_rules "$rule path=/objects/*"
    out=$(stat "$T/m$n/vm" 2>&1)
    assert_match "always $rule: the first lookup of the bundle fails with EIO" \
        "Input/output error" "$out"
    assert_match "always $rule: ... and the daemon's log names the bundle and the URL" \
        "cannot pull bundle 'vm' of 'http://127\.0\.0\.1:$FAULT_PORT' into the mount" \
        "$(cat "$T/m$n.log")"
    faultsrv_rules
    check "always $rule: server fixed, the lookup pulls the bundle" stat "$T/m$n/$IMG"
    faultsrv_rules "$rule path=/objects/*"
    t0=$(date +%s)
    out=$("$RCMP" -j 4 -b 262144 -n 4 "$T/m$n/$IMG" "$REF")
    dt=$(($(date +%s) - t0))
    assert_eq "always $rule: the reads fail with EIO (4 readers, 4 chunks each)" "ok=0 eio=16 wrong=0 err=0" "$out"
    assert_num "always $rule: within the soft retry budget ($dt s)" "$dt" -le 60
    assert_match "always $rule: the daemon's log names the file, the URL and the chunk" \
        "disk\\.img.*127\\.0\\.0\\.1:$FAULT_PORT.*[0-9a-f]{64}" "$(cat "$T/m$n.log")"
    faultsrv_rules
    out=$("$RCMP" -s -j 2 -b 65536 "$T/m$n/$IMG" "$REF")
    assert_eq "always $rule: server fixed, every block correct (no failure cached)" "ok=512 eio=0 wrong=0 err=0" "$out"
    rumount m$n || notok "always $rule: the daemon exits cleanly"
    out=$(cache_verify "$T/cache$n")
    assert_match "always $rule: the cache holds only verified chunks ($out)" '^[0-9]+$' "$out"
done
check "faultsrv survived" faultsrv_clean
finish
