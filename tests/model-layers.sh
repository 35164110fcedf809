#!/bin/sh
# model-layers.sh - the model-based random-operation test of model.sh
# (tests/helpers/modeltest) on images that stand on layers, where the writes of a
# top layer meet the bytes beneath it:
#   1. a clone of a local bundle (snapshots of it taken through the mount while
#      the model's files are open), and the bundle itself, whose layers a snapshot
#      froze;
#   2. a bundle pulled from a published store (file:// URL, 64 KiB chunks): a delta
#      over remote images, fetched lazily (snapshots taken as in 1);
#   3. both again with a second mount of the store beside the first (and plain
#      files too): now and then a file is closed, opened through the other mount
#      (close-to-open: it must read as the model), changed there or not, closed,
#      and opened again in the first.
# pwrite, truncate (down, then up: the bytes beneath must not come back), punch,
# zero-range, fallocate, copy_file_range, fsync, reopen and remounts, checked
# against a model that starts from the images' bytes (SEEK_DATA/SEEK_HOLE and
# st_blocks too). Then what lies beneath reads as before: the snapshot, the bundle
# the clone came from, a second pull of the same published bundle; what the model
# left survives export + import and flatten; an export offline that needs chunks
# the cache lacks fails and makes no archive.
# Env: VMB_MODEL_SEED (default 1), VMB_MODEL_OPS (operations per run, default 5000).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
MODELTEST=$VMB_TESTBIN/helpers/modeltest
[ -x "$MODELTEST" ] || hard_error "$MODELTEST is not built"
need_mkpub
SEED=${VMB_MODEL_SEED:-1}
OPS=${VMB_MODEL_OPS:-5000}
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"
export VMBUNDLEFS_CACHE=$T/cache

# put FILE OFF LEN: random bytes at OFF
put() {
    head -c "$3" /dev/urandom | dd of="$1" bs=64K seek="$2" oflag=seek_bytes conv=notrunc \
        status=none || hard_error "cannot write $1"
}

# Three sparse images (model<i>.img, as modeltest names them): data at and across
# 64 KiB (chunk) and 4 KiB bounds, holes between, sizes that are not a multiple of
# a block, data up to the last byte of one.
SRC=$T/src/vm
mkdir -p "$SRC"
for i in 0 1 2; do
    f=$SRC/model$i.img
    size=$(( (12 + 5 * i) * 1048576 + 1234 * i ))
    truncate -s "$size" "$f"
    put "$f" 0 65536
    put "$f" 130000 200000
    put "$f" $((4 * 1048576 - 4096)) 8192
    put "$f" $((7 * 1048576 + 512)) 1048576
    put "$f" $((size - 70000)) 70000
done
printf '{"cpu": 2}\n' >"$SRC/config.json"

# run_model NAME DIR [OTHER_DIR]: modeltest on DIR's images, with remounts (and
# the same files through another mount; more options in MODEL_EXTRA)
MODEL_EXTRA=()
run_model() {
    local name=$1 dir=$2 other=${3:-} start rc
    say "# modeltest --existing --seed $SEED --ops $OPS on $name${other:+ (and $other)}"
    start=$(date +%s)
    "$MODELTEST" --existing --check-blocks --seed "$SEED" --ops "$OPS" --dir "$dir" \
        ${other:+--other-dir "$other"} "${MODEL_EXTRA[@]}" \
        --remount-cmd "$T/remount.sh" --remount-every $((OPS / 3)) >"$T/model.out" 2>&1
    rc=$?
    model_report "$rc" "$T/model.out"
    assert_eq "modeltest on $name, seed $SEED, $OPS ops, passes ($(($(date +%s) - start)) s)" 0 "$rc"
    assert_match "... it remounted the store" 'remount [1-9]' "$(tail -n 1 "$T/model.out")"
}

# same_as_source NAME DIR: DIR's images read as the source's
same_as_source() {
    local i
    for i in 0 1 2; do
        check "$1: model$i.img reads as the source" cmp "$SRC/model$i.img" "$2/model$i.img"
    done
}

# ---- 1. local layers: a clone, and the bundle under a snapshot ----
mount_store
write_remount_script "$T/remount.sh"
check "copy the images into a bundle" cp -r --sparse=always "$SRC" "$MNT/vm"
check "snapshot it" "$VMB_BIN" snapshot "$MNT" vm s1
check "clone it" "$VMB_BIN" clone "$MNT" vm c1
# snapshots of the clone taken through the mount, its files open: each reads as
# the files did then, the last one still at the end
MODEL_EXTRA=(--snapshot-cmd "$VMB_BIN snapshot $MNT c1" --snapshot-view "$MNT/.snapshots/c1@%s"
    --snapshot-every $((OPS / 10 + 1)))
run_model "a clone, snapshots taken" "$MNT/c1"
MODEL_EXTRA=()
same_as_source "the bundle it was cloned from" "$MNT/vm"
same_as_source "the snapshot" "$MNT/.snapshots/vm@s1"
SEED=$((SEED + 1)) run_model "the bundle under its snapshot" "$MNT/vm"
same_as_source "the snapshot, after" "$MNT/.snapshots/vm@s1"
unmount_store

# ---- 2. a bundle pulled from a published store ----
"$MKPUB" -c 65536 "$T/pub" "$SRC" >/dev/null || hard_error "mkpub failed"
check "pull URL#vm into the store" "$VMB_BIN" pull "$STORE" "file://$T/pub#vm" p1
assert_eq "the pulled images are empty deltas" "0 0 0" \
    "$(stat -c %b "$STORE/p1/model0.img" "$STORE/p1/model1.img" "$STORE/p1/model2.img" | xargs)"
mount_store
MODEL_EXTRA=(--snapshot-cmd "$VMB_BIN snapshot $MNT p1" --snapshot-view "$MNT/.snapshots/p1@%s"
    --snapshot-every $((OPS / 10 + 1)))
SEED=$((SEED + 2)) run_model "a pulled bundle, snapshots taken" "$MNT/p1"
MODEL_EXTRA=()
# what the model left, as read through the mount, survives an export (offline, its
# chunks through the cache) and an import, and a flatten (bytes and data map)
mkdir "$T/after"
for i in 0 1 2; do
    cp --sparse=always "$MNT/p1/model$i.img" "$T/after/model$i.img"
    vmbio map "$MNT/p1/model$i.img" >"$T/after/map$i"
done
unmount_store
check "export the pulled bundle" "$VMB_BIN" export "$STORE" p1 "$T/p1.tar"
check "import it again" "$VMB_BIN" import "$STORE" "$T/p1.tar" p1i
check "flatten the pulled bundle" "$VMB_BIN" flatten "$STORE" p1
mount_store
# (import makes whole blocks of zeros holes: the imported files' maps may have
# fewer data extents, never other bytes)
for i in 0 1 2; do
    check "flattened: model$i.img reads as it did" cmp "$T/after/model$i.img" "$MNT/p1/model$i.img"
    assert_eq "flattened: model$i.img's data map is as it was" "$(cat "$T/after/map$i")" \
        "$(vmbio map "$MNT/p1/model$i.img")"
    check "exported and imported: model$i.img reads as it did" \
        cmp "$T/after/model$i.img" "$MNT/p1i/model$i.img"
done
unmount_store
check "pull the same bundle again" "$VMB_BIN" pull "$STORE" "file://$T/pub#vm" p2
check "and once more" "$VMB_BIN" pull "$STORE" "file://$T/pub#vm" p3
check "ls of the store" "$VMB_BIN" ls "$STORE"
check "fsck -n of the store" "$VMB_BIN" fsck -n "$STORE"
check "deps of a pulled bundle" "$VMB_BIN" deps "$STORE" p3
mount_store
same_as_source "the second pull" "$MNT/p2"

# ---- 3. two mounts of the store at once ----
# (structural commands need a store with at most one mount: the clone comes first)
check "clone the snapshot" "$VMB_BIN" clone "$MNT" vm@s1 c2
B=$T/mnt2
mkdir "$B"
on_exit 'mountpoint -q "$B" && fusermount3 -uz "$B"; [ -s "$T/daemon2.pid" ] && kill -9 "$(cat "$T/daemon2.pid")" 2>/dev/null'
( sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon2.pid" "$VMB_BIN" mount -f --log="$T/log2" \
      -o "cache=$T/cache" "$STORE" "$B"
  echo $? >"$T/daemon2.rc" ) </dev/null >>"$T/daemon2.out" 2>&1 &
wait_for 30 mountpoint -q "$B" || { cat "$T/daemon2.out" "$T/log2" 2>/dev/null; fail "the second mount did not appear"; }
same_as_source "the clone of the snapshot, through the second mount" "$B/c2"
# blocks zeroed over the base through one mount (the backing file does not
# change there) read as zeros through the other, and the file's times moved
cp --sparse=always "$SRC/model0.img" "$T/expect0.img"
m0=$(stat -c %Y.%y "$MNT/c2/model0.img")
check "punch two base blocks through the first mount" vmbio falloc "$MNT/c2/model0.img" punch 65536 8192
check "write a block of zeros over the base there" vmbio pwrite "$MNT/c2/model0.img" 135168 4096 0
vmbio falloc "$T/expect0.img" punch 65536 8192 >/dev/null
vmbio pwrite "$T/expect0.img" 135168 4096 0 >/dev/null
check "the second mount reads the zeros" cmp "$T/expect0.img" "$B/c2/model0.img"
check_fails "the punch and the write changed the file's modification time" \
    test "$m0" = "$(stat -c %Y.%y "$MNT/c2/model0.img")"
check "a truncate down and up through the first mount" \
    sh -c "truncate -s 70000 '$MNT/c2/model1.img' && truncate -s $(stat -c %s "$SRC/model1.img") '$MNT/c2/model1.img'"
cp --sparse=always "$SRC/model1.img" "$T/expect1.img"
truncate -s 70000 "$T/expect1.img" && truncate -s "$(stat -c %s "$SRC/model1.img")" "$T/expect1.img"
check "the second mount reads zeros past the cut" cmp "$T/expect1.img" "$B/c2/model1.img"
SEED=$((SEED + 3)) run_model "a clone, with a second mount" "$MNT/c2" "$B/c2"
SEED=$((SEED + 4)) run_model "a pulled bundle, with a second mount" "$MNT/p3" "$B/p3"
# and plain files (no layers), made empty by the model
mkdir "$MNT/plain"
"$MODELTEST" --check-blocks --seed $((SEED + 5)) --ops "$OPS" --dir "$MNT/plain" \
    --other-dir "$B/plain" --remount-cmd "$T/remount.sh" --remount-every $((OPS / 3)) \
    >"$T/model.out" 2>&1
assert_eq "modeltest on plain files, with a second mount, passes" 0 $? || \
    sed 's/^/    /' "$T/model.out" | tail -n 40
unmount_store
fusermount3 -u "$B" || fusermount3 -uz "$B"
wait_for 30 test -e "$T/daemon2.rc"
assert_eq "the second daemon exits with status 0" 0 "$(cat "$T/daemon2.rc" 2>/dev/null)"
check_fails "the second daemon's log has no error" grep -E 'runtime error|AddressSanitizer|ERROR' "$T/log2" "$T/daemon2.out"

# ---- an export that needs chunks the cache does not hold, offline ----
# (another cache: the one above holds every chunk of the published images)
export VMBUNDLEFS_CACHE=$T/cache-other
check "pull a bundle, read nothing of it" "$VMB_BIN" pull "$STORE" "file://$T/pub#vm" p4
mv "$T/pub" "$T/pub.away"
out=$("$VMB_BIN" export "$STORE" p4 "$T/p4.tar" 2>&1)
assert_eq "export offline fails (exit 1)" 1 $?
assert_match "... naming the file and the URL" "model0.img.*file://$T/pub" "$out"
check_fails "... and makes no archive" test -e "$T/p4.tar"
mv "$T/pub.away" "$T/pub"
check "online again, it exports" "$VMB_BIN" export "$STORE" p4 "$T/p4.tar"
finish
