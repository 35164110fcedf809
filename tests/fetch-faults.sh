#!/bin/bash
# fetch-faults.sh - the http fetcher through libcurl against faults of a small server of
# our own (tests/helpers/faultsrv.js, node): a truncated body (shorter than its
# Content-Length), a reset connection, 500/503/429 and a stalled body are retried and
# then give the right bytes, or -EIO naming URL and cause once the budget is spent;
# a 200 to a range is sliced, a 206 for another range refused, a range past the end is
# EINVAL, a redirect is followed, 403 is EACCES. Never a short or wrong answer. No mount.
set -u
export LC_ALL=C
[ -n "${VMB_TESTBIN:-}" ] || { echo "VMB_TESTBIN unset (run from make check)"; exit 99; }
FT=$VMB_TESTBIN/helpers/fetchtool
SRV=${VMB_SRCDIR:-$(dirname "$0")/..}/tests/helpers/faultsrv.js
command -v node >/dev/null || { echo "SKIP: node is not installed (apt-get install nodejs)"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}"/vmb-fetch-faults.XXXXXX) || exit 99
SPID=
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	[ -n "${VMB_KEEP_TMP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 N=0
check() {
	local d=$1; shift
	N=$((N + 1))
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; FAILS=$((FAILS + 1)); fi
}
expect_rc() {
	local d=$1 want=$2 msg=$3 rc; shift 3
	N=$((N + 1))
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	if [ "$rc" = "$want" ] && grep -qF -- "$msg" "$T/err" && [ ! -s "$T/out" ]; then
		echo "ok   $d"
	else
		echo "FAIL $d: exit $rc (want $want), stderr: $(cat "$T/err"), $(wc -c <"$T/out") bytes out"
		FAILS=$((FAILS + 1))
	fi
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

P=$(free_port)
node "$SRV" "$P" "$T/req.log" >"$T/srv.log" 2>&1 &
SPID=$!
for _ in $(seq 300); do
	grep -q ready "$T/srv.log" && break
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
grep -q ready "$T/srv.log" || { echo "ERROR: faultsrv.js did not start:"; cat "$T/srv.log"; exit 99; }
B=http://127.0.0.1:$P
# the reference bytes: byte i = (i * 7 + 3) & 255
node -e 'const b=Buffer.alloc(65536); for(let i=0;i<65536;i++) b[i]=(i*7+3)&255; process.stdout.write(b)' >"$T/ref"
: >"$T/req.log"
tries() { grep -c "^GET $1\$" "$T/req.log"; }
# right DESC URL PATH WANT_REQUESTS [fetchtool options]: the whole object, right, after
# WANT_REQUESTS requests
right() {
	local d=$1 url=$2 path=$3 want=$4; shift 4
	check "$d" bash -c "'$FT' $* '$url' get '$path' >'$T/got' && cmp -s '$T/got' '$T/ref' &&
		[ \$(grep -c '^GET ${url#"$B"}/$path\$' '$T/req.log') = $want ]"
}

right "a truncated body twice, then right (3 requests)" "$B/trunc/2" a 3 -b 5
right "a reset connection twice, then right" "$B/reset/2" a 3 -b 5
right "500, 503 and 429, then right" "$B/e500/1" a 2 -b 5
right "... 503" "$B/e503/3" a 4 -b 5
right "... 429" "$B/e429/1" a 2 -b 5
right "a stalled body (low-speed timeout 1 s), then right" "$B/stall/1" a 2 -b 5 -l 1
expect_rc "truncated beyond the budget: EIO naming URL and cause" 5 \
	"cannot fetch '$B/trunc/9/b': truncated body" "$FT" -n 2 -b 5 "$B/trunc/9" get b
check "... 3 requests" bash -c "[ \$(grep -c '^GET /trunc/9/b\$' '$T/req.log') = 3 ]"
expect_rc "resets beyond the budget: EIO" 5 "after 2 attempts" "$FT" -n 1 -b 5 "$B/reset/9" get b
expect_rc "503 beyond the budget: EIO" 5 "HTTP 503 after 3 attempts" "$FT" -n 2 -b 5 "$B/e503/9" get b
expect_rc "a stall beyond the budget: EIO" 5 "timed out" "$FT" -n 0 -l 1 "$B/stall/9" get b
check "ranges of a truncating object: right after retries" \
	bash -c "'$FT' -b 5 '$B/trunc/1' get r 1000 5000 >'$T/got' &&
	dd if='$T/ref' bs=1000 skip=1 count=5 2>/dev/null | cmp -s - '$T/got'"
check "a 200 to a range: the range sliced out of it" \
	bash -c "'$FT' '$B/whole/0' get w 60000 5536 >'$T/got' && tail -c 5536 '$T/ref' | cmp -s - '$T/got'"
expect_rc "a 206 for another range is refused" 71 "without the Content-Range asked for" \
	"$FT" -n 0 "$B/badrange/0" get x 100 10
expect_rc "a range past the end (416): EINVAL, not retried" 22 "past the end of the object" \
	"$FT" -n 3 "$B/ok/0" get x 65536 10
expect_rc "a range across the end (short 206): EINVAL" 22 "past the end of the object (1000 bytes)" \
	"$FT" -n 3 "$B/short/0" get x 900 200
expect_rc "a 200 to a range past the end: EINVAL" 22 "past the end of the object (65536 bytes)" \
	"$FT" -n 3 "$B/whole/0" get y 65000 1000
check "a redirect is followed" bash -c "'$FT' '$B/redir/0' get d >'$T/got' && cmp -s '$T/got' '$T/ref'"
expect_rc "403: EACCES, not retried" 13 "access denied (HTTP 403)" "$FT" -n 3 "$B/e403/0" get z
check "... one request" bash -c "[ \$(grep -c '^GET /e403/0/z\$' '$T/req.log') = 1 ]"
right "hard mode: 6 failures with no retry budget, then right" "$B/e503/6" h 7 -H -n 0 -b 5
right "hard mode: resets and truncations, then right" "$B/trunc/4" h 5 -H -n 0 -b 5
expect_rc "hard mode, a transfer stalled in flight: a cancel ends it at once" 125 \
	"the fetcher is closing" bash -c "s=\$(date +%s%N); '$FT' -H -k 700 '$B/stall/99' get c; rc=\$?
	[ \$(( (\$(date +%s%N) - s) / 1000000 )) -lt 5000 ] || echo 'took 5 s or more' >&2; exit \$rc"
check "... in under 5 s (the stall alone lasts 15 s)" bash -c "! grep -q 'took 5 s' '$T/err'"
expect_rc "hard mode against a dead port: a cancel ends the retries" 125 "the fetcher is closing (last error: cannot connect" \
	"$FT" -H -b 50 -k 500 http://127.0.0.1:9 get c
# proxies come from the environment (libcurl's own handling)
: >"$T/req.log"
expect_rc "http_proxy is used: a dead proxy is a refused connection" 5 "cannot connect" \
	env http_proxy=http://127.0.0.1:9 "$FT" -n 0 "$B/ok/0" get p
check "... nothing reached the server" bash -c "[ ! -s '$T/req.log' ]"
check "... no_proxy exempts the host" bash -c "http_proxy=http://127.0.0.1:9 no_proxy=127.0.0.1 \
	'$FT' -n 0 '$B/ok/0' get p >'$T/got' && cmp -s '$T/got' '$T/ref'"
check "HEAD after a reset" bash -c "[ \"\$('$FT' -b 5 '$B/reset/1' head h)\" = 65536 ]"
# a reader's own fetch goes before readahead queued earlier: through 1 slot, 4
# background gets of an answer that takes 2 s, then (150 ms later) a foreground get;
# it must not wait for the 3 still queued (without the priority it came after all 4).
# (2 s, not less: the foreground get must be queued while the first one still runs,
# also on a loaded machine under the sanitizers.)
check "a foreground get goes before queued background ones" bash -c "
	n=\$('$FT' -i 1 '$B' prio late/2000/bg 4 ok/0/fg) || exit 1
	echo \"background gets ended before it: \$n\"; [ \"\$n\" -le 1 ]"
# ... and does not wait for a slot at all: background transfers leave 2 of the slots
# to the others (here 5 slots, 8 background gets: 3 run, the foreground one starts at
# once and ends before any of them)
check "a foreground get starts at once beside running background ones" bash -c "
	n=\$('$FT' -i 5 '$B' prio late/2000/bg 8 ok/0/fg) || exit 1
	echo \"background gets ended before it: \$n\"; [ \"\$n\" = 0 ]"

echo "fetch-faults.sh: $N checks, $FAILS failed"
[ "$FAILS" = 0 ]
