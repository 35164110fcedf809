#!/bin/bash
# fetch-http.sh - the http(s) fetcher (src/remote/fetch_http.c, fetch_curl.c) against a
# real nginx started here on loopback: HTTP/1.1, and HTTPS with HTTP/2 (ALPN) under a
# test CA made with openssl. Bytes, ranges, HEAD, 404, a buffer too small, TLS
# verification (the right CA, a wrong CA, the system CAs), PUT (nginx dav), 503
# retried then -EIO, a stalled body (low-speed timeout), a refused connection, and
# many gets from several threads over few connections. No mount.
set -u
export LC_ALL=C
[ -n "${VMB_TESTBIN:-}" ] || { echo "VMB_TESTBIN unset (run from make check)"; exit 99; }
FT=$VMB_TESTBIN/helpers/fetchtool
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "SKIP: nginx is not installed (apt-get install nginx-light)"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}"/vmb-fetch-http.XXXXXX) || exit 99
NGPID=
cleanup() {
	[ -n "$NGPID" ] && kill "$NGPID" 2>/dev/null && wait "$NGPID" 2>/dev/null
	[ -n "${VMB_KEEP_TMP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
FAILS=0 N=0
check() {	# check DESC CMD...: CMD must succeed
	local d=$1; shift
	N=$((N + 1))
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; FAILS=$((FAILS + 1)); fi
}
# expect_rc DESC RC MSG CMD...: CMD exits RC and says MSG on stderr
expect_rc() {
	local d=$1 want=$2 msg=$3 rc; shift 3
	N=$((N + 1))
	"$@" >"$T/out" 2>"$T/err"; rc=$?
	if [ "$rc" = "$want" ] && grep -qF -- "$msg" "$T/err"; then
		echo "ok   $d"
	else
		echo "FAIL $d: exit $rc (want $want), stderr: $(cat "$T/err")"
		FAILS=$((FAILS + 1))
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

# ---- content and certificates
mkdir -p "$T/srv/pub/objects/ab" "$T/srv/put" "$T/tmp"
# nginx's workers run as root here (user root below: \$TMPDIR may be private to root);
# without root they run as the caller
head -c 1000003 /dev/urandom >"$T/srv/pub/objects/ab/big"
printf 'vmbundlefs-published 1\n' >"$T/srv/pub/index"
: >"$T/srv/pub/empty"
cd "$T" || exit 99
mkca() {	# mkca NAME: a self-signed CA
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$1.key" -out "$1.crt" -subj "/CN=vmbundlefs test $1" 2>/dev/null
}
mkca ca && mkca wrongca || { echo "ERROR: openssl cannot make a CA"; exit 99; }
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
	-subj "/CN=localhost" 2>/dev/null &&
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
	-extfile san.ext -out srv.crt 2>/dev/null || { echo "ERROR: cannot sign the server certificate"; exit 99; }

# ---- nginx on two free ports
P1=$(free_port) P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
cat >"$T/nginx.conf" <<EOF
daemon off;
$( [ "$(id -u)" = 0 ] && echo 'user root root;' )
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log;
events { worker_connections 256; }
http {
	log_format t '\$request_method \$uri \$status \$server_protocol c\$connection';
	access_log $T/access.log t;
	client_body_temp_path $T/tmp; proxy_temp_path $T/tmp; fastcgi_temp_path $T/tmp;
	uwsgi_temp_path $T/tmp; scgi_temp_path $T/tmp;
	default_type application/octet-stream;
	keepalive_requests 10000;
	server {
		listen 127.0.0.1:$P1;
		root $T/srv;
		location /put/ { dav_methods PUT; create_full_put_path on; }
		location /fail/ { return 503; }
		location /slow/ { alias $T/srv/pub/; limit_rate 200; }
	}
	server {
		listen 127.0.0.1:$P2 ssl http2;
		ssl_certificate $T/srv.crt;
		ssl_certificate_key $T/srv.key;
		root $T/srv;
		location /close/ { return 444; }
	}
}
EOF
"$NGINX" -p "$T" -c "$T/nginx.conf" -e "$T/error.log" 2>"$T/nginx.err" &
NGPID=$!
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$P1/pub/index" && break
	sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$P1/pub/index" ||
	{ echo "ERROR: nginx did not start:"; cat "$T/nginx.err" "$T/error.log"; exit 99; }

H=http://127.0.0.1:$P1/pub
S=https://localhost:$P2/pub
BIG=$T/srv/pub/objects/ab/big

# ---- HTTP/1.1
check "http: whole object, byte for byte" \
	bash -c "'$FT' '$H' get objects/ab/big >'$T/got' && cmp -s '$T/got' '$BIG'"
check "http: a range" bash -c "'$FT' '$H/' get objects/ab/big 4097 5000 >'$T/got' &&
	dd if='$BIG' bs=1 skip=4097 count=5000 2>/dev/null | cmp -s - '$T/got'"
check "http: the last byte" bash -c "'$FT' '$H' get objects/ab/big 1000002 1 >'$T/got' &&
	tail -c 1 '$BIG' | cmp -s - '$T/got'"
check "http: an empty object" bash -c "'$FT' '$H' get empty >'$T/got' && cmp -s '$T/got' /dev/null"
check "http: HEAD gives the size" bash -c "[ \"\$('$FT' '$H' head objects/ab/big)\" = 1000003 ]"
expect_rc "http: 404 is ENOENT, not retried, naming the URL" 2 \
	"cannot fetch '$H/objects/ab/nope': not found (HTTP 404)" "$FT" -v "$H" get objects/ab/nope
check "http: ... with no retry" grep -q "retries 0 errors 1" "$T/err"
expect_rc "http: HEAD of a missing object is ENOENT" 2 "not found" "$FT" "$H" head nope
expect_rc "http: a range past the end is EINVAL" 22 "past the end of the object" \
	"$FT" "$H" get objects/ab/big 1000000 10
expect_rc "http: an object larger than the buffer is EFBIG" 27 \
	"the object is larger than the 1000 bytes expected" "$FT" -m 1000 "$H" get objects/ab/big
expect_rc "http: 503 retried, then EIO naming URL, cause and attempts" 5 \
	"cannot fetch 'http://127.0.0.1:$P1/fail/x': HTTP 503 after 3 attempts" \
	"$FT" -n 2 -b 10 "http://127.0.0.1:$P1/fail" get x
check "http: ... three requests reached the server" \
	bash -c "[ \$(grep -c '^GET /fail/x 503' '$T/access.log') = 3 ]"
expect_rc "http: a stalled body times out (low speed), retried, EIO" 5 \
	"timed out (curl 28: Operation too slow" \
	"$FT" -n 1 -b 10 -l 1 "http://127.0.0.1:$P1/slow" get objects/ab/big
check "http: PUT, then HEAD and GET read it back" bash -c "
	'$FT' 'http://127.0.0.1:$P1/put' put objects/cd/new '$BIG' && cmp -s '$T/srv/put/objects/cd/new' '$BIG' &&
	[ \"\$('$FT' 'http://127.0.0.1:$P1/put' head objects/cd/new)\" = 1000003 ] &&
	'$FT' 'http://127.0.0.1:$P1/put' get objects/cd/new | cmp -s - '$BIG'"
expect_rc "http: PUT refused (405) is an error, not retried" 5 "HTTP 405" \
	"$FT" -n 3 -b 10 "$H" put objects/ab/x "$BIG"
: >"$T/access.log.mark"; cp "$T/access.log" "$T/access.log.mark"
check "http: 64 gets from 8 threads, all the same bytes" "$FT" "$H" many objects/ab/big 64 8
# more callers than transfer slots: a slot that frees is taken at once by a queued
# transfer. The engine used to wait for its next event first, which, when the
# transfers that ended were the only ones running and nobody queued another, was a
# whole second of its poll: 8 callers of one get each through 1 slot took 7 s.
check "http: 8 gets at once through 1 slot, none waits for the engine's timeout" bash -c "
	s=\$(date +%s%N); '$FT' -i 1 '$H' many objects/ab/big 8 8 || exit 1
	ms=\$(( (\$(date +%s%N) - s) / 1000000 )); echo \"took \$ms ms\"; [ \$ms -lt 2500 ]"
# a lone transfer runs in its caller's thread (no hand-over to the engine's thread)
check "http: a lone get is driven by its caller" bash -c "'$FT' -v '$H' get objects/ab/big 2>&1 >/dev/null |
	grep -q 'requests 1 .* own_thread 1\$'"
grep '^GET /pub/objects/ab/big 200' "$T/access.log" | tail -n 65 | awk '{print $5}' | sort -u >"$T/conns"
check "http: ... over reused connections (at most 16 for 65 requests)" \
	bash -c "[ \$(wc -l <'$T/conns') -le 16 ]"

# ---- HTTPS, HTTP/2, the test CA
: >"$T/access.log"
check "https: whole object with -o cafile" \
	bash -c "'$FT' -c '$T/ca.crt' '$S' get objects/ab/big | cmp -s - '$BIG'"
check "https: ... over HTTP/2 (ALPN)" grep -q '^GET /pub/objects/ab/big 200 HTTP/2.0' "$T/access.log"
check "https: a range" bash -c "'$FT' -c '$T/ca.crt' '$S' get objects/ab/big 999000 1003 >'$T/got' &&
	tail -c 1003 '$BIG' | cmp -s - '$T/got'"
check "https: HEAD" bash -c "[ \"\$('$FT' -c '$T/ca.crt' '$S' head objects/ab/big)\" = 1000003 ]"
expect_rc "https: 404" 2 "not found (HTTP 404)" "$FT" -c "$T/ca.crt" "$S" get nope
expect_rc "https: a wrong CA fails verification, not retried" 13 \
	"TLS: the server's certificate does not verify" "$FT" -v -n 3 -c "$T/wrongca.crt" "$S" get index
check "https: ... with no retry" grep -q "retries 0 errors 1" "$T/err"
expect_rc "https: the system CAs do not know the test CA" 13 "does not verify" "$FT" "$S" get index
head -c 16000000 /dev/zero >"$T/zeros"
expect_rc "https: a PUT cut off by the server (444, mid-body): an error, the process lives" 5 \
	"cannot upload 'https://localhost:$P2/close/x'" "$FT" -n 1 -b 10 -c "$T/ca.crt" "https://localhost:$P2/close" put x "$T/zeros"
expect_rc "https: a missing CA file is an error" 22 "cannot load the CA file" \
	"$FT" -c "$T/nonexistent.crt" "$S" get index
: >"$T/access.log"
check "https: 64 gets from 8 threads over HTTP/2" "$FT" -c "$T/ca.crt" "$S" many objects/ab/big 64 8
awk '{print $5}' "$T/access.log" | sort -u >"$T/conns"
check "https: ... multiplexed on at most 2 connections" bash -c "[ \$(wc -l <'$T/conns') -le 2 ]"
check "https: ... all HTTP/2" bash -c "! grep -qv 'HTTP/2.0' '$T/access.log'"

# ---- no server
kill "$NGPID"; wait "$NGPID" 2>/dev/null; NGPID=
expect_rc "a refused connection is retried, then EIO" 5 "cannot connect" \
	"$FT" -n 2 -b 10 "$H" get index
check "... after 3 attempts" grep -q "after 3 attempts" "$T/err"

echo "fetch-http.sh: $N checks, $FAILS failed"
[ "$FAILS" = 0 ]
