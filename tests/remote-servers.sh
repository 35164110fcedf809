#!/bin/bash
# remote-servers: the servers the remote-image tests stand on, checked alone with
# curl (no mount): nginx over HTTP/1.1 and HTTPS with HTTP/2 and the test CA (and
# refused with another CA); our faultsrv (Range, keep-alive, access log, each fault
# as curl sees it, rules switched on and off through the control file, hostile
# requests survived); the shaping proxy (latency per round trip, rate cap, bytes
# unchanged). If these are wrong, every remote test above them means nothing.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup noinit nofuse
need_tool curl "the servers are checked with curl"

D=$T/pub
mkdir -p "$D/objects/ab"
head -c 1048576 /dev/urandom >"$D/objects/ab/obj"
printf 'vmbundlefs-published 1\n' >"$D/index"
ln -s /etc/passwd "$D/objects/ab/link"
OBJ=$D/objects/ab/obj

# curl_code URL [ARGS]: "HTTPCODE EXIT" of a GET into $T/got
curl_code() {
    local url=$1 code rc
    shift
    code=$(curl -s -o "$T/got" -w '%{http_code}' --max-time 20 "$@" "$url")
    rc=$?
    echo "$code $rc"
}

# ------------------------------------------------------------------ nginx
if command -v nginx >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
    nginx_start "$D"
    check "nginx HTTP/1.1: whole object" bash -c "curl -sf '$NGINX_URL/objects/ab/obj' | cmp - '$OBJ'"
    check "nginx HTTP/1.1: a range" bash -c "curl -sf -r 1000-1999 '$NGINX_URL/objects/ab/obj' | cmp - <(tail -c +1001 '$OBJ' | head -c 1000)"
    out=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} %{http_version}\n' "$NGINX_URL/index" "$NGINX_URL/index")
    assert_eq "nginx HTTP/1.1: keep-alive (2 requests, 1 connection)" "1 1.1
0 1.1" "$out"
    out=$(curl -s --cacert "$TLS_CA" -o "$T/got" -w '%{http_version}' "$NGINX_TLS_URL/objects/ab/obj")
    assert_eq "nginx HTTPS: HTTP/2 with the test CA" 2 "$out"
    check "nginx HTTPS: bytes" cmp "$T/got" "$OBJ"
    check_fails "nginx HTTPS: refused with another CA" curl -sf --cacert "$TLS_OTHER_CA" "$NGINX_TLS_URL/index"
    check_fails "nginx HTTPS: refused with the system CAs" curl -sf "$NGINX_TLS_URL/index"
    sleep 0.2
    assert_match "nginx access log: method, path, range, status, bytes, protocol" \
        '^GET /objects/ab/obj "bytes=1000-1999" 206 1000 HTTP/1.1$' "$(cat "$NGINX_LOG")"
    assert_match "nginx access log: HTTP/2 request" '^GET /objects/ab/obj "-" 200 1048576 HTTP/2.0$' "$(cat "$NGINX_LOG")"
    assert_eq "log_fetches counts both object GETs" "3 /objects/ab/obj" "$(log_fetches "$NGINX_LOG")"
    nginx_stop
    check_fails "nginx stopped" curl -sf "$NGINX_URL/index"
else
    say "# nginx or openssl missing: nginx checks skipped"
fi

# ------------------------------------------------------------------ faultsrv
faultsrv_start "$D" -s 7
U=$FAULT_URL/objects/ab/obj
check "faultsrv: whole object" bash -c "curl -sf '$U' | cmp - '$OBJ'"
check "faultsrv: range a-b" bash -c "curl -sf -r 5-104 '$U' | cmp - <(tail -c +6 '$OBJ' | head -c 100)"
check "faultsrv: range a-" bash -c "curl -sf -r 1048000- '$U' | cmp - <(tail -c 576 '$OBJ')"
check "faultsrv: range -n" bash -c "curl -sf -r -10 '$U' | cmp - <(tail -c 10 '$OBJ')"
hdr=$(curl -s -D - -o /dev/null -r 0-9 "$U" | tr -d '\r')
assert_match "faultsrv: 206 with Content-Range" '^Content-Range: bytes 0-9/1048576$' "$hdr"
assert_eq "faultsrv: unsatisfiable range is 416" "416 0" "$(curl_code "$U" -r 2000000-)"
assert_eq "faultsrv: missing object is 404" "404 0" "$(curl_code "$FAULT_URL/objects/ab/none")"
assert_eq "faultsrv: a symlink is not followed" "403 0" "$(curl_code "$FAULT_URL/objects/ab/link")"
assert_eq "faultsrv: a directory is 404" "404 0" "$(curl_code "$FAULT_URL/objects/ab")"
assert_eq "faultsrv: %2e%2e is refused" "400 0" "$(curl_code "$FAULT_URL/objects/%2e%2e/%2e%2e/index" --path-as-is)"
assert_eq "faultsrv: PUT is refused" "405 0" "$(curl_code "$FAULT_URL/index" -X PUT)"
out=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}' "$U" "$U" -r 0-1 "$U")
assert_eq "faultsrv: keep-alive (3 requests, 1 connection)" "100" "$out"
check "faultsrv: HEAD" bash -c "curl -sfI '$U' | tr -d '\\r' | grep -qx 'Content-Length: 1048576'"

# each fault as curl sees it
faultsrv_rules "flip path=/objects/* at=12345"
curl -s -o "$T/got" "$U"
assert_eq "flip: one byte differs, at 12345" "12346" "$(cmp -l "$T/got" "$OBJ" | awk '{ print $1 }')"
assert_eq "flip: only for objects" "200 0" "$(curl_code "$FAULT_URL/index")"
check "flip: the index is intact" cmp "$T/got" "$D/index"
faultsrv_rules "truncate at=1000"
assert_eq "truncate: curl sees a short body (exit 18)" "200 18" "$(curl_code "$U")"
assert_eq "truncate: 1000 bytes came" 1000 "$(stat -c %s "$T/got")"
faultsrv_rules "drop-before"
assert_eq "drop-before: empty reply (exit 52)" "000 52" "$(curl_code "$U")"
faultsrv_rules "reset"
assert_eq "reset: connection reset (exit 56)" "000 56" "$(curl_code "$U")"
faultsrv_rules "drop-after"
assert_eq "drop-after: headers, no body (exit 18)" "200 18" "$(curl_code "$U")"
faultsrv_rules "500" "status code=429 path=/nothing"
assert_eq "500" "500 0" "$(curl_code "$U")"
faultsrv_rules "503 path=/objects/*"
assert_eq "503 for an object" "503 0" "$(curl_code "$U")"
assert_eq "503 rule does not touch the index" "200 0" "$(curl_code "$FAULT_URL/index")"
faultsrv_rules "stall secs=1.5 at=4096"
t0=$(date +%s%N)
assert_eq "stall: the body completes" "200 0" "$(curl_code "$U")"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_num "stall: took >= 1.5 s ($ms ms)" "$ms" -ge 1450
check "stall: bytes intact" cmp "$T/got" "$OBJ"
faultsrv_rules "slow rate=2097152"
t0=$(date +%s%N)
curl -s -o "$T/got" "$U"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_num "slow: 1 MiB at 2 MiB/s takes >= 450 ms ($ms ms)" "$ms" -ge 450
assert_num "slow: ... and < 2 s" "$ms" -lt 2000
check "slow: bytes intact" cmp "$T/got" "$OBJ"
faultsrv_rules "503 every=3"
codes=$(for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' "$FAULT_URL/index"; done)
assert_eq "every=3: the 3rd and 6th fail" "200 200 503 200 200 503 " "$codes"
faultsrv_rules "503 count=2"
codes=$(for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code} ' "$FAULT_URL/index"; done)
assert_eq "count=2: the first two fail" "503 503 200 200 " "$codes"
faultsrv_rules "503 prob=0.5"
n=$(for i in $(seq 1 40); do curl -s -o /dev/null -w '%{http_code}\n' "$FAULT_URL/index"; done | grep -c 503)
assert_num "prob=0.5: some of 40 fail ($n)" "$n" -ge 5
assert_num "prob=0.5: some of 40 pass ($n)" "$n" -le 35
faultsrv_rules
check "rules off: correct bytes again" bash -c "curl -sf '$U' | cmp - '$OBJ'"
printf 'bogus-action\nflip every=0\n' >"$FAULT_CTL.tmp" && mv "$FAULT_CTL.tmp" "$FAULT_CTL"
check "bad rules are ignored (and named on stderr)" bash -c "curl -sf '$U' | cmp - '$OBJ' && grep -q 'unknown action' '$FAULT_STDERR'"
faultsrv_rules
faults=$(awk '{ print $6 }' "$FAULT_LOG" | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
assert_match "access log names every fault applied" \
    'drop-after=1 drop-before=1 flip=1 reset=1 slow=1 stall=1 status=[0-9]+ truncate=1' "$faults"
assert_match "access log line: method path range status bytes fault" \
    '^GET /objects/ab/obj bytes=5-104 206 100 -$' "$(cat "$FAULT_LOG")"

# hostile clients: the server answers or closes, and lives
raw() { # raw BYTES (printf format): send, read the answer's first line
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "$2" >&3; head -c 200 <&3 | head -n 1 | tr -d "\r"' _ "$FAULT_PORT" "$1" 2>/dev/null
}
assert_eq "hostile: NUL in the request line" "HTTP/1.1 400 Bad Request" "$(raw 'GET /in\0dex HTTP/1.1\r\n\r\n')"
assert_eq "hostile: %%00 in the path" "HTTP/1.1 400 Bad Request" "$(raw 'GET /%%00 HTTP/1.1\r\nConnection: close\r\n\r\n')"
assert_eq "hostile: .. in the path" "HTTP/1.1 400 Bad Request" "$(raw 'GET /../etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n')"
assert_eq "hostile: no version" "HTTP/1.1 400 Bad Request" "$(raw 'GET /index\r\n\r\n')"
assert_eq "hostile: HTTP/2.0 on a 1.1 server" "HTTP/1.1 505 HTTP Version Not Supported" "$(raw 'GET /index HTTP/2.0\r\n\r\n')"
assert_eq "hostile: a request body" "HTTP/1.1 413 Payload Too Large" "$(raw 'GET /index HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello')"
big=$(head -c 20000 /dev/zero | tr '\0' a)
assert_eq "hostile: 20 KB of headers" "HTTP/1.1 431 Request Header Fields Too Large" "$(raw "GET /index HTTP/1.1\r\nX: $big\r\n\r\n")"
assert_eq "hostile: overflowing range is served whole" "HTTP/1.1 200 OK" "$(raw 'GET /index HTTP/1.1\r\nRange: bytes=99999999999999999999999-\r\nConnection: close\r\n\r\n')"
for i in $(seq 1 60); do  # junk, then hang up
    head -c $((RANDOM % 3000)) /dev/urandom >"$T/junk"
    [ $((i % 2)) = 0 ] && printf 'GET /%s HTTP/1.1\r\n\r\n' "$i" >>"$T/junk"
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; cat "$2" >&3' _ "$FAULT_PORT" "$T/junk" 2>/dev/null
done
for i in $(seq 1 20); do  # read a little of a big body, then hang up
    timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "GET /objects/ab/obj HTTP/1.1\r\n\r\n" >&3; head -c 10 <&3 >/dev/null' _ "$FAULT_PORT" 2>/dev/null
done
check "hostile: the server still serves correct bytes" bash -c "curl -sf '$U' | cmp - '$OBJ'"
check "hostile: the server did not crash (no sanitizer report)" faultsrv_clean

# ------------------------------------------------------------------ shaping proxy
shapeproxy_start "127.0.0.1:$FAULT_PORT" -d 10 -r 40M
PU=http://127.0.0.1:$PROXY_PORT/objects/ab/obj
check "proxy: bytes unchanged" bash -c "curl -sf 'http://127.0.0.1:$PROXY_PORT/objects/ab/obj' | cmp - '$OBJ'"
out=$(curl -s -o /dev/null -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PROXY_PORT/index" "http://127.0.0.1:$PROXY_PORT/index" |
    awk '{ printf "%d ", $1 * 1000 }')
first=${out%% *}
second=$(echo "$out" | awk '{ print $2 }')
assert_num "proxy: first request costs handshake + 1 RTT (>= 38 ms: $first)" "$first" -ge 38
assert_num "proxy: a request on a kept connection costs 1 RTT (>= 19 ms: $second)" "$second" -ge 19
assert_num "proxy: ... not much more (< 120 ms: $second)" "$second" -lt 120
t0=$(date +%s%N)
curl -s -o /dev/null "$PU"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_num "proxy: 1 MiB at 40 Mbit/s takes >= 200 ms ($ms ms)" "$ms" -ge 200
assert_num "proxy: ... and < 1.5 s" "$ms" -lt 1500
shapeproxy_stop
faultsrv_stop
check_fails "faultsrv stopped" curl -sf "$FAULT_URL/index"
finish
