#!/bin/sh
# Model-based random-operation test: tests/helpers/modeltest runs a long random
# sequence of pwrite/ftruncate/fallocate/copy_file_range/fsync/reopen/remount
# on files in a mounted bundle and checks them against an in-memory model.
# Env: VMB_MODEL_SEED (default 1), VMB_MODEL_OPS (default 20000),
# VMB_MODEL_CHECK_BLOCKS (default 1: st_blocks must equal the data extents' blocks).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
MODELTEST=$VMB_TESTBIN/helpers/modeltest
[ -x "$MODELTEST" ] || hard_error "$MODELTEST is not built"
SEED=${VMB_MODEL_SEED:-1}
OPS=${VMB_MODEL_OPS:-20000}
EXTRA=
[ "${VMB_MODEL_CHECK_BLOCKS:-1}" = 0 ] || EXTRA=--check-blocks

mount_store
check "mkdir bundle" mkdir "$MNT/model"
write_remount_script "$T/remount.sh"

say "# modeltest --seed $SEED --ops $OPS $EXTRA"
start=$(date +%s)
"$MODELTEST" --seed "$SEED" --ops "$OPS" --dir "$MNT/model" --remount-cmd "$T/remount.sh" $EXTRA >"$T/model.out" 2>&1
rc=$?
end=$(date +%s)
model_report "$rc" "$T/model.out"
assert_eq "modeltest seed $SEED, $OPS ops passes ($((end - start)) s)" 0 "$rc"
assert_match "modeltest remounted the store" 'remount [1-9]' "$(tail -n 1 "$T/model.out")"
finish
