#!/bin/bash
# tests/fuzz/libfuzzer.sh - coverage-guided fuzzing of the on-disk parsers with libFuzzer.
#
#   tests/fuzz/libfuzzer.sh [-s SECONDS] [-w WORKDIR] [-c BUILDDIR] [TARGET...]
#
# Builds libvmbundle (all of src/ but the command) and each fuzz target
# (tests/fuzz/fuzz_TARGET.c; default: all of them) with clang -fsanitize=fuzzer,address,
# undefined, then runs each for SECONDS (default 600: the long run on demand; make
# check's tests/fuzz.sh runs it for a few seconds). The corpus of each target lives in
# WORKDIR/corpus/TARGET (default WORKDIR: $TMPDIR/vmbundlefs-fuzz, kept between runs
# so a long run goes on where the last stopped), seeded from the target's own seeds.
# BUILDDIR: a configured build directory whose config.h to use (default: the
# build/ of the checkout, else a minimal one). A crash leaves its input in WORKDIR/crash-TARGET-*; the script then exits 1.
# Needs clang and libclang-rt-14-dev (Debian 12); exits 77 without them.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
src=$(cd "$here/../.." && pwd -P)
secs=600
work=${TMPDIR:-/tmp}/vmbundlefs-fuzz
confdir=$src/build
while getopts s:w:c: o; do
	case $o in
	s) secs=$OPTARG ;;
	w) work=$OPTARG ;;
	c) confdir=$OPTARG ;;
	*) echo "usage: $0 [-s SECONDS] [-w WORKDIR] [-c BUILDDIR] [TARGET...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$here"/fuzz_*.c; do
		t=${f##*/fuzz_}; t=${t%.c}
		[ "$t" = store ] || targets+=("$t")
	done
fi

CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null; then
	echo "libfuzzer.sh: SKIP: no $CC (install clang and libclang-rt-14-dev)"; exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}' |
	"$CC" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "libfuzzer.sh: SKIP: $CC cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"; exit 77
fi

mkdir -p "$work/obj" "$work/corpus" || exit 1
if [ -f "$confdir/config.h" ]; then
	cp "$confdir/config.h" "$work/obj/config.h" || exit 1
else
	printf '#define _GNU_SOURCE 1\n#define PACKAGE_VERSION "fuzz"\n' >"$work/obj/config.h"
fi
flags=(-g -O1 -std=gnu11 -pthread -fno-omit-frame-pointer -DHAVE_CONFIG_H -I"$work/obj" -I"$src/src"
	$(pkg-config --cflags libarchive libcrypto libcurl 2>/dev/null))
san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
objs=()
for c in "$src"/src/*/*.c; do
	case $c in */cli/cli_*) continue ;; esac
	o=$work/obj/$(basename "$(dirname "$c")")_$(basename "${c%.c}").o
	if [ ! -e "$o" ] || [ "$c" -nt "$o" ]; then
		"$CC" "${flags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$c" -o "$o" || exit 1
	fi
	objs+=("$o")
done

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
failed=0
for t in "${targets[@]}"; do
	bin=$work/fuzz_$t
	"$CC" "${flags[@]}" "${san[@]}" -fsanitize=fuzzer "$here/fuzz_$t.c" "$here/fuzz_store.c" \
		"${objs[@]}" $(pkg-config --libs libarchive libcrypto libcurl 2>/dev/null) -o "$bin" || exit 1
	# Seeds from the target itself (the driver build knows how to write them).
	seeds=$work/seeds-$t
	rm -rf "$seeds"; mkdir -p "$seeds" "$work/corpus/$t"
	"$CC" "${flags[@]}" "$here/fuzz_$t.c" "$here/fuzz_store.c" "$here/driver.c" \
		"${objs[@]}" -fsanitize=address,undefined,fuzzer-no-link \
		$(pkg-config --libs libarchive libcrypto libcurl 2>/dev/null) -o "$work/seed_$t" || exit 1
	"$work/seed_$t" --seeds "$seeds" >/dev/null || exit 1
	echo "libfuzzer.sh: fuzz_$t for ${secs}s"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/crash-$t-" "$work/corpus/$t" "$seeds" >"$work/log-$t" 2>&1; then
		echo "libfuzzer.sh: fuzz_$t FOUND A BUG; its log ($work/log-$t) ends:"
		tail -40 "$work/log-$t"
		failed=1
	else
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$work/log-$t" | tail -2 | sed "s/^/  fuzz_$t: /"
	fi
done
exit $failed
