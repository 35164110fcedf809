#!/bin/sh
# Backing up a running VM from a snapshot (issue 10): `vmbundlefs snapshot MNT
# BUNDLE NAME` while a writer keeps changing the bundle's image prints
# MNT/.snapshots/BUNDLE@NAME; the snapshot holds every write that returned before
# the command started and none that started after it returned; it is read-only
# (EROFS) and stays identical while the writes go on; restic and borg (Debian's)
# back it up while the live image changes, and what they restore equals the
# snapshot; --list shows it, --delete removes it. Exit 77 when neither restic nor
# borg is installed (contrib/setup.sh installs both); one of them missing is said
# and its part left out.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

HAVE=
command -v restic >/dev/null 2>&1 && HAVE="$HAVE restic"
command -v borg >/dev/null 2>&1 && HAVE="$HAVE borg"
[ -n "$HAVE" ] || skip "neither restic nor borg is installed (apt-get install restic borgbackup)"
vmb_setup
M=$((1024 * 1024))
NB=16384                  # blocks of the image the writer changes (64 MiB)
run() { timeout 120 "$@" >"$T/o" 2>"$T/e"; RC=$?; }
WPID=
on_exit '[ -n "$WPID" ] && kill $WPID 2>/dev/null'

mkdir "$STORE/vm"
truncate -s $((256 * M)) "$STORE/vm/disk.img"
head -c $((8 * M)) /dev/urandom | dd of="$STORE/vm/disk.img" bs=1M seek=128 conv=notrunc status=none
head -c 100000 /dev/urandom >"$STORE/vm/nvram.bin"
printf 'cpus 2\n' >"$STORE/vm/config"
mkdir "$STORE/vm/Data"
head -c $((2 * M)) /dev/urandom >"$STORE/vm/Data/aux.img"
mount_store

# The writer: generation g writes block (g * 7919) % NB with 4 KiB that say "g b",
# then logs "g b" once pwrite returned (each line flushed).
python3 - "$MNT/vm/disk.img" "$T/writes.log" "$NB" >"$T/writer.out" 2>&1 <<'EOF' &
import os, sys
path, logp, nb = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY)
log = open(logp, "w", buffering=1)
g = 0
while True:
    g += 1
    b = (g * 7919) % nb
    rec = ("%012d %08d\n" % (g, b)).encode()
    os.pwrite(fd, rec * (4096 // len(rec)) + b"\n" * (4096 % len(rec)), b * 4096)
    log.write("%d %d\n" % (g, b))
EOF
WPID=$!
for i in $(seq 100); do [ "$(cat "$T/writes.log" 2>/dev/null | wc -l)" -ge 200 ] && break; sleep 0.05; done
assert_num "the writer is writing" "$(wc -l <"$T/writes.log")" -ge 200

# The generations of each block that returned before the snapshot started.
cp "$T/writes.log" "$T/before.log"
run "$VMB_BIN" snapshot "$MNT" vm s1
cp "$T/writes.log" "$T/after.log"
assert_eq "snapshot under a writer: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
SNAP=$MNT/.snapshots/vm@s1
assert_eq "snapshot prints where it is seen" "$SNAP" "$(tail -n 1 "$T/o" | sed 's|/$||')"
check "the snapshot is a directory in the mount" test -d "$SNAP"
check "the snapshot holds the bundle's files" test -f "$SNAP/disk.img" -a -f "$SNAP/Data/aux.img"
(cd "$SNAP" && find . -type f -exec sha256sum {} + | sort -k 2) >"$T/snap.sha"
assert_eq "the snapshot's files are the bundle's" "$(cd "$STORE/vm" && find . -type f | sort)" \
    "$(cd "$SNAP" && find . -type f | sort)"
# Every block: the last generation written before the command started, up to the
# last one that may have been in flight when it returned; never a later one.
python3 - "$SNAP/disk.img" "$T/before.log" "$T/after.log" "$NB" >"$T/consistency" <<'EOF'
import sys
snap, before, after, nb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def last(path):
    d, top = {}, 0
    for line in open(path):
        p = line.split()
        if len(p) != 2:
            continue          # a line being written when the file was copied
        g, b = int(p[0]), int(p[1])
        d[b] = g
        top = max(top, g)
    return d, top
lo, _ = last(before)
hi_map, hi = last(after)
bad = 0
with open(snap, "rb") as f:
    for b in range(nb):
        f.seek(b * 4096)
        blk = f.read(4096)
        g = int(blk[:12]) if blk[:1] not in (b"\0", b"") else 0
        if b in lo and g < lo[b]:
            print("block %d: generation %d in the snapshot, but %d had returned before it" % (b, g, lo[b])); bad += 1
        if g > hi + 1:
            print("block %d: generation %d in the snapshot started after it returned (last logged %d)" % (b, g, hi)); bad += 1
        if g and blk[13:21] != b"%08d" % b:
            print("block %d: holds another block's record" % b); bad += 1
print("checked", nb, "blocks,", bad, "bad")
EOF
assert_match "snapshot: every write that returned before is in it, none that started after" \
    "^checked $NB blocks, 0 bad$" "$(tail -n 1 "$T/consistency")"
[ "$(tail -n 1 "$T/consistency")" = "checked $NB blocks, 0 bad" ] || head -n 5 "$T/consistency"
run "$VMBIO" pwrite "$SNAP/disk.img" 0 4096 p1
assert_eq "a write into the snapshot fails with EROFS" EROFS "$(cat "$T/o")"
run touch "$SNAP/new"
assert_num "creating a file in the snapshot fails" $RC -ne 0
run "$VMB_BIN" snapshot --list "$STORE" vm
assert_match "snapshot --list shows it" "vm@s1" "$(cat "$T/o")"

# ---- backups of the snapshot while the live image keeps changing ----
for tool in $HAVE; do
    case $tool in
    restic)
        export RESTIC_PASSWORD=vmbtest RESTIC_CACHE_DIR=$T/restic-cache
        run restic init --repo "$T/restic"
        assert_eq "restic init (errors: $(head -c 300 "$T/e"))" 0 $RC
        run restic backup --repo "$T/restic" "$SNAP"
        assert_eq "restic backup of the snapshot while the image changes (errors: $(head -c 300 "$T/e"))" 0 $RC
        run restic restore latest --repo "$T/restic" --target "$T/restic-out"
        assert_eq "restic restore (errors: $(head -c 300 "$T/e"))" 0 $RC
        out=$T/restic-out$SNAP
        ;;
    borg)
        export BORG_BASE_DIR=$T/borg-base BORG_PASSPHRASE='' BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
        run borg init -e none "$T/borg"
        assert_eq "borg init (errors: $(head -c 300 "$T/e"))" 0 $RC
        run sh -c 'cd "$1" && borg create "$2::s1" .' _ "$SNAP" "$T/borg"
        assert_eq "borg create of the snapshot while the image changes (errors: $(head -c 300 "$T/e"))" 0 $RC
        mkdir "$T/borg-out"
        run sh -c 'cd "$1" && borg extract --sparse "$2::s1"' _ "$T/borg-out" "$T/borg"
        assert_eq "borg extract (errors: $(head -c 300 "$T/e"))" 0 $RC
        out=$T/borg-out
        ;;
    esac
    assert_eq "$tool: the restored files are the snapshot's, byte for byte" "$(cat "$T/snap.sha")" \
        "$(cd "$out" && find . -type f -exec sha256sum {} + | sort -k 2)"
    assert_eq "$tool: sizes kept" "$(cd "$SNAP" && find . -type f -printf '%p %s\n' | sort)" \
        "$(cd "$out" && find . -type f -printf '%p %s\n' | sort)"
done
assert_num "the writer went on during the backups" "$(wc -l <"$T/writes.log")" -gt "$(wc -l <"$T/after.log")"
assert_eq "the snapshot is unchanged after the backups, with the writes going on" "$(cat "$T/snap.sha")" \
    "$(cd "$SNAP" && find . -type f -exec sha256sum {} + | sort -k 2)"
kill $WPID; wait $WPID 2>/dev/null; WPID=
check "the live image moved on from the snapshot" sh -c "! cmp -s '$SNAP/disk.img' '$MNT/vm/disk.img'"

# ---- after a remount the snapshot is the same; then it is deleted ----
remount
assert_eq "the snapshot after a remount" "$(cat "$T/snap.sha")" \
    "$(cd "$SNAP" && find . -type f -exec sha256sum {} + | sort -k 2)"
run "$VMB_BIN" snapshot --delete "$MNT" vm@s1
assert_eq "snapshot --delete: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
check "the deleted snapshot is gone from the mount" test ! -e "$SNAP"
run "$VMB_BIN" snapshot --delete "$MNT" vm@s1
assert_num "deleting it again fails" $RC -ne 0
assert_match "... naming it" "vm@s1" "$(cat "$T/e")"
finish
