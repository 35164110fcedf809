#!/bin/bash
# tests/fuzz.sh - the parser fuzzers in make check (see tests/fuzz/fuzz.h).
#  1. Each target writes its seeds (well-formed files made by the library's own
#     writers), replays them and runs VMB_FUZZ_MUTATIONS (default 3000) deterministic
#     mutations of each, with the sanitizers of this build.
#  2. In the sanitizer build (or when VMB_FUZZ_SECONDS is set), libFuzzer runs each
#     target for VMB_FUZZ_SECONDS (default 10) through tests/fuzz/libfuzzer.sh; the
#     long run on demand is that script with -s SECONDS.
set -uo pipefail
: "${VMB_TESTBIN:?run through make check}" "${VMB_SRCDIR:?run through make check}"
targets=(sidecar journal layout auxpat holders manifest layermap pubindex pubbundle pubimage)
T=$(mktemp -d "${TMPDIR:-/tmp}/vmb-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
fail=0
for t in "${targets[@]}"; do
	bin=$VMB_TESTBIN/fuzz/fuzz_$t
	"$bin" --seeds "$T/seeds-$t" >/dev/null || { echo "FAIL: fuzz_$t cannot write its seeds"; fail=1; continue; }
	if VMB_FUZZ_LAST="$T/last-$t" "$bin" --mutate "${VMB_FUZZ_MUTATIONS:-3000}" "$T/seeds-$t" >"$T/out-$t" 2>&1; then
		echo "ok: fuzz_$t: $(tail -1 "$T/out-$t")"
	else
		echo "FAIL: fuzz_$t crashed; its output ends:"; tail -30 "$T/out-$t"
		echo "the input (base64):"; base64 "$T/last-$t" | head -40
		fail=1
	fi
done
secs=${VMB_FUZZ_SECONDS:-}
if [ -z "$secs" ]; then
	case ${VMB_SAN_CFLAGS:-} in *sanitize=*) secs=10 ;; *) secs=0 ;; esac
fi
if [ "$secs" -gt 0 ]; then
	bash "$VMB_SRCDIR/tests/fuzz/libfuzzer.sh" -s "$secs" -w "$T/libfuzzer" \
		-c "$(dirname "$VMB_TESTBIN")" "${targets[@]}"
	case $? in
	0) echo "ok: libFuzzer, ${secs}s per target" ;;
	77) echo "SKIP (libFuzzer part only): no clang with libFuzzer here; CI installs it" ;;
	*) echo "FAIL: libFuzzer"; fail=1 ;;
	esac
else
	echo "note: libFuzzer runs in the sanitizer build (or with VMB_FUZZ_SECONDS=N)"
fi
exit $fail
