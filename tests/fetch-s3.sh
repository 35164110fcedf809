#!/bin/bash
# fetch-s3.sh - the s3:// fetcher (SigV4 by libcurl's CURLOPT_AWS_SIGV4, credentials
# from the environment and ~/.aws files) against s3rver, an S3-protocol server from the
# npm registry, behind tests/helpers/s3sigv4.js, which checks the signatures and payload
# hashes (s3rver 3.x does not check SigV4), started here on loopback (path-style through
# --endpoint). PUT, HEAD, GET whole and ranged, 404, a wrong secret, a session token,
# a profile from ~/.aws/credentials, unsigned requests. No mount.
# s3rver comes from contrib/setup.sh test (npm install into /var/tmp/vmbundlefs-npm);
# VMB_NPM_DIR names another directory. Without it (or node) the test exits 77.
set -u
export LC_ALL=C
[ -n "${VMB_TESTBIN:-}" ] || { echo "VMB_TESTBIN unset (run from make check)"; exit 99; }
FT=$VMB_TESTBIN/helpers/fetchtool
NPMDIR=${VMB_NPM_DIR:-/var/tmp/vmbundlefs-npm}
FRONT=${VMB_SRCDIR:-$(dirname "$0")/..}/tests/helpers/s3sigv4.js
command -v node >/dev/null || { echo "SKIP: node is not installed (apt-get install nodejs npm)"; exit 77; }
[ -f "$NPMDIR/node_modules/s3rver/package.json" ] ||
	{ echo "SKIP: s3rver is not installed in $NPMDIR (contrib/setup.sh test installs it with npm)"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}"/vmb-fetch-s3.XXXXXX) || exit 99
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

# No credentials or profile of the user's may leak in.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE \
	AWS_REGION AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE
export HOME=$T/home
mkdir -p "$HOME" "$T/data"

P=$(free_port)
NODE_PATH=$NPMDIR/node_modules node "$FRONT" "$T/data" "$P" vmbtest "$T/req.log" >"$T/s3rver.log" 2>&1 &
SPID=$!
E=http://127.0.0.1:$P
for _ in $(seq 300); do
	grep -q ready "$T/s3rver.log" && break
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
grep -q ready "$T/s3rver.log" || { echo "ERROR: s3rver did not start:"; cat "$T/s3rver.log"; exit 99; }

head -c 3000017 /dev/urandom >"$T/big"
head -c 100 /dev/urandom >"$T/small"
: >"$T/empty"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
U=s3://vmbtest/pub/v1

check "s3: PUT a 3 MB object (signed, payload hash in x-amz-content-sha256)" \
	"$FT" -e "$E" "$U" put objects/ab/big "$T/big"
check "s3: PUT a small and an empty object" \
	bash -c "'$FT' -e '$E' '$U' put index '$T/small' && '$FT' -e '$E' '$U' put empty '$T/empty'"
check "s3: ... signed, the payload hash checked by the server" \
	bash -c "[ \$(grep -c '^PUT /vmbtest/pub/v1/.* 200 signed' '$T/req.log') = 3 ]"
check "s3: HEAD gives the size" bash -c "[ \"\$('$FT' -e '$E' '$U' head objects/ab/big)\" = 3000017 ]"
check "s3: GET whole, byte for byte" bash -c "'$FT' -e '$E' '$U' get objects/ab/big >'$T/got' && cmp -s '$T/got' '$T/big'"
check "s3: GET a range" bash -c "'$FT' -e '$E' '$U' get objects/ab/big 1048576 262144 >'$T/got' &&
	dd if='$T/big' bs=65536 skip=16 count=4 2>/dev/null | cmp -s - '$T/got'"
check "s3: GET the empty object" bash -c "'$FT' -e '$E' '$U' get empty >'$T/got' && cmp -s '$T/got' /dev/null"
check "s3: PUT replaces an object" bash -c "'$FT' -e '$E' '$U' put index '$T/big' &&
	'$FT' -e '$E' '$U' get index >'$T/got' && cmp -s '$T/got' '$T/big'"
expect_rc "s3: HEAD of a missing object is ENOENT" 2 "not found (HTTP 404" "$FT" -e "$E" "$U" head objects/zz/none
expect_rc "s3: GET of a missing object is ENOENT naming the s3 URL" 2 \
	"cannot fetch '$U/objects/zz/none': not found (HTTP 404: NoSuchKey)" "$FT" -e "$E" "$U" get objects/zz/none
expect_rc "s3: a missing bucket is ENOENT" 2 "NoSuchBucket" "$FT" -e "$E" s3://nobucket/p get index
expect_rc "s3: a wrong secret is EACCES, not retried" 13 "access denied (HTTP 403: SignatureDoesNotMatch)" \
	env AWS_SECRET_ACCESS_KEY=wrong "$FT" -v -n 3 -e "$E" "$U" get index
check "s3: ... one attempt" grep -q "retries 0 errors 1" "$T/err"
expect_rc "s3: an unknown key id is EACCES" 13 "access denied (HTTP 403: InvalidAccessKeyId)" \
	env AWS_ACCESS_KEY_ID=NOSUCHKEY "$FT" -e "$E" "$U" get index
expect_rc "s3: HEAD with an unknown key id is EACCES (no body, no code)" 13 "access denied (HTTP 403)" \
	env AWS_ACCESS_KEY_ID=NOSUCHKEY "$FT" -e "$E" "$U" head index
check "s3: a session token is sent and signed" \
	bash -c "AWS_SESSION_TOKEN=sessiontoken123 '$FT' -e '$E' '$U' get index >'$T/got' && cmp -s '$T/got' '$T/big' &&
	grep -q '^GET /vmbtest/pub/v1/index 200 signed token=sessiontoken123' '$T/req.log'"

# credentials from ~/.aws files instead of the environment
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
mkdir -p "$HOME/.aws"
printf '[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = x\n[vmb]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' \
	>"$HOME/.aws/credentials"
printf '[profile vmb]\nregion = eu-west-3\n' >"$HOME/.aws/config"
check "s3: credentials of AWS_PROFILE from ~/.aws/credentials, region from ~/.aws/config" \
	bash -c "AWS_PROFILE=vmb '$FT' -e '$E' '$U' get objects/ab/big >'$T/got' && cmp -s '$T/got' '$T/big'"
expect_rc "s3: the default profile's wrong key is refused" 13 "InvalidAccessKeyId" "$FT" -e "$E" "$U" get index
printf '[vmb]\naws_access_key_id S3RVER\n' >"$HOME/.aws/credentials"
expect_rc "s3: a malformed credentials file is an error naming file and line" 22 \
	"$HOME/.aws/credentials:2: expected 'key = value'" env AWS_PROFILE=vmb "$FT" -e "$E" "$U" get index
rm -f "$HOME/.aws/credentials" "$HOME/.aws/config"
# no credentials at all: unsigned requests (s3rver serves them, as a public bucket would)
check "s3: unsigned GET without credentials" \
	bash -c "'$FT' -e '$E' '$U' get objects/ab/big >'$T/got' && cmp -s '$T/got' '$T/big' &&
	tail -n 1 '$T/req.log' | grep -q '^GET /vmbtest/pub/v1/objects/ab/big 200 unsigned'"
expect_rc "s3: a bad endpoint is refused at open" 22 "invalid S3 endpoint" "$FT" -e "ftp://x" "$U" get index
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
expect_rc "s3: server gone: retried, then EIO" 5 "cannot connect" \
	env AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$FT" -n 1 -b 10 -e "$E" "$U" get index

echo "fetch-s3.sh: $N checks, $FAILS failed"
[ "$FAILS" = 0 ]
