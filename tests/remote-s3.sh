#!/bin/bash
# remote-s3.sh - a published store in an S3 bucket, mounted, pulled and prefetched
# through an S3-compatible endpoint (issue 11 §3): s3rver from npm behind
# tests/helpers/s3sigv4.js (which checks SigV4), on loopback.
#   publish with SigV4 through --endpoint; mount s3://BUCKET/PREFIX read-only with
#   -o endpoint= (and with AWS_ENDPOINT_URL_S3, which wins over AWS_ENDPOINT_URL):
#   bytes equal to the source (cmp), SEEK_DATA/SEEK_HOLE map equal, every request
#   signed; pull (--endpoint, and endpoint_url of ~/.aws/config) into a local store:
#   deps and the .remote layer keep the endpoint (s3+http://HOST:PORT/BUCKET/PREFIX),
#   prefetch and a mount of the store need no endpoint again; a public bucket read
#   with no credentials (unsigned); offline (s3rver stopped): both remounts read what
#   is cached, the uncached part fails with EIO; clear errors: a bad s3 URL, a bad
#   endpoint, an unknown bucket, a wrong endpoint (nothing listening, not S3), a
#   private bucket and no credentials (the sources tried are named), a wrong secret
#   (mount and pull; nothing left behind), endpoint= on a store's mount, --endpoint on
#   a mounted path.
# s3rver comes from contrib/setup.sh test (npm, into /var/tmp/vmbundlefs-npm); without
# node or s3rver the test exits 77.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
remote_need_cli pull prefetch
# nothing of the user's AWS setup may leak in
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE \
    AWS_REGION AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
    AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
export HOME=$T/home
mkdir -p "$HOME"
export S3SIGV4_PRIVATE_FLAG=$T/private   # while it exists, unsigned requests get 403
s3_start vmbtest
E=$S3_ENDPOINT
U=s3://$S3_BUCKET/pub/v1
UE=s3+$E/$S3_BUCKET/pub/v1    # the URL as it is kept: it names the endpoint
C=$T/cache
export VMBUNDLEFS_CACHE=$C
IMG=vm/disk.img
remote_fixture
signed_only() { ! grep -v ' signed token=' "$S3_LOG"; }

# ---- publish with SigV4 ----
: >"$S3_LOG"
out=$("$VMB_BIN" publish --chunk-size=256K --endpoint "$E" "$STORE" vm "$U" 2>&1)
assert_eq "publish to $U through --endpoint (exit 0)" 0 $? || say "$out"
assert_num "... PUT objects, signed and accepted" "$(grep -c '^PUT /vmbtest/pub/v1/.* 200 signed' "$S3_LOG")" -ge 20
check "... every request signed" signed_only
: >"$S3_LOG"
out=$(AWS_ENDPOINT_URL=$E "$VMB_BIN" publish --chunk-size=256K "$STORE" vm "s3://$S3_BUCKET/pub/env" 2>&1)
assert_eq "publish with AWS_ENDPOINT_URL instead of --endpoint (exit 0)" 0 $? || say "$out"
assert_num "... its objects PUT to that endpoint, signed" "$(grep -c '^PUT /vmbtest/pub/env/.* 200 signed' "$S3_LOG")" -ge 20

# ---- bad input ----
out=$("$VMB_BIN" mount -o "endpoint=$E" s3://x/pub "$T/bad" 2>&1); rc=$?
assert_eq "a bad bucket name: usage error (exit 2)" "2" "$rc"
assert_match "... saying why" "invalid URL 's3://x/pub': the bucket name" "$out"
out=$("$VMB_BIN" mount -o "endpoint=ftp://127.0.0.1" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a bad endpoint: usage error (exit 2)" "2" "$rc"
assert_match "... naming it" "invalid S3 endpoint 'ftp://127.0.0.1'" "$out"
out=$("$VMB_BIN" mount -o "endpoint=$E/some/path" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "an endpoint with a path: usage error (exit 2)" "2" "$rc"
out=$("$VMB_BIN" mount -o "cache=$T/c-nb,endpoint=$E" "s3://nosuchbucket/pub" "$T/bad" 2>&1); rc=$?
assert_eq "an unknown bucket: the mount fails (exit 1)" "1" "$rc"
assert_match "... saying the bucket does not exist at the endpoint" \
    "bucket 'nosuchbucket' does not exist at $E \(HTTP 404: NoSuchBucket\)" "$out"
P=$(random_port)
out=$("$VMB_BIN" mount -o "cache=$T/c-we,endpoint=http://127.0.0.1:$P" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a wrong endpoint (nothing listens): the mount fails (exit 1)" "1" "$rc"
assert_match "... naming the endpoint and the cause" \
    "cannot mount 's3\\+http://127\\.0\\.0\\.1:$P/vmbtest/pub/v1'.*(refused|connect)" "$out"
mkdir -p "$T/www"
nginx_start "$T/www"
out=$("$VMB_BIN" mount -o "cache=$T/c-ng,endpoint=$NGINX_URL" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a wrong endpoint (a web server, not S3): the mount fails (exit 1)" "1" "$rc"
assert_match "... asking whether it is an S3 endpoint" "is $NGINX_URL an S3 endpoint\\?" "$out"
nginx_stop
check_fails "nothing mounted by the failed mounts" mountpoint -q "$T/bad"
out=$("$VMB_BIN" mount -o "endpoint=$E" "$STORE" "$T/bad" 2>&1); rc=$?
assert_eq "endpoint= on the mount of a store: usage error (exit 2)" "2" "$rc"
assert_match "... saying its bundles remember theirs" "remember the endpoint" "$out"

# ---- credentials ----
touch "$T/private"
out=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$VMB_BIN" mount \
    -o "cache=$T/c-nc,endpoint=$E" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a private bucket and no credentials: the mount fails (exit 1)" "1" "$rc"
assert_match "... access denied, the request unsigned" "access denied \(HTTP 403: AccessDenied\): the request was not signed" "$out"
assert_match "... naming the sources tried" "AWS_ACCESS_KEY_ID is not set and profile 'default' has no key in '$HOME/.aws/credentials' nor in '$HOME/.aws/config'" "$out"
out=$(AWS_SECRET_ACCESS_KEY=wrong "$VMB_BIN" mount -o "cache=$T/c-ws,endpoint=$E" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a wrong secret: the mount fails (exit 1)" "1" "$rc"
assert_match "... naming the key, where it came from, the bucket, the endpoint" \
    "SignatureDoesNotMatch\) to access key 'S3RVER' \(from environment\) for bucket 'vmbtest' at $E" "$out"
rm -f "$T/private"
: >"$S3_LOG"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY     # the daemon started now has none
rmount anon "$U" -o "cache=$T/c-anon,endpoint=$E"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
check "a public bucket, no credentials: mounted, reads byte for byte" cmp "$REF" "$T/anon/$IMG"
assert_num "... by unsigned GETs" "$(grep -c '^GET /vmbtest/pub/v1/objects/.* 200 unsigned' "$S3_LOG")" -ge "$N_OBJ_CHUNKS"
assert_eq "... and no signed one" "0" "$(grep -c ' signed token=' "$S3_LOG")"
rumount anon || notok "the daemon of the unsigned mount exits cleanly"

# ---- mount s3:// read-only ----
: >"$S3_LOG"
rmount m1 "$U" -o "endpoint=$E,cache=$C"
assert_eq "mount -o endpoint=: SEEK_DATA/SEEK_HOLE map equal to the source's" \
    "$(vmbio map "$REF")" "$(vmbio map "$T/m1/$IMG")"
assert_eq "... st_blocks exact (the source's data bytes)" "$(vmbio mapsum "$REF")" "$(($(stat -c %b "$T/m1/$IMG") * 512))"
check "... the image reads byte for byte" cmp "$REF" "$T/m1/$IMG"
check "... the small files too" cmp "$SRC/config" "$T/m1/vm/config"
check "... and nvram" cmp "$SRC/nvram" "$T/m1/vm/nvram"
check_fails "... read-only" touch "$T/m1/vm/new"
assert_num "... objects came by GET from the bucket" "$(grep -c '^GET /vmbtest/pub/v1/objects/.* 200 signed' "$S3_LOG")" -ge "$N_OBJ_CHUNKS"
check "... every request signed" signed_only
rumount m1 || notok "the daemon of m1 exits cleanly"
touch "$T/private"
out=$(AWS_SECRET_ACCESS_KEY=wrong "$VMB_BIN" mount -o "endpoint=$E,cache=$C" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "a wrong secret with the index saved in the cache: still refused (exit 1)" "1" "$rc"
assert_match "... saying the saved index stands in only for a server out of reach" \
    "used only when the server cannot be reached" "$out"
rm -f "$T/private"

: >"$S3_LOG"
export AWS_ENDPOINT_URL=http://127.0.0.1:$P AWS_ENDPOINT_URL_S3=$E
rmount m3 "$U" -o "cache=$T/c-env"
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
check "mount with AWS_ENDPOINT_URL_S3 (which wins over AWS_ENDPOINT_URL): reads byte for byte" \
    cmp "$REF" "$T/m3/$IMG"
check "... every request signed" signed_only
rumount m3 || notok "the daemon of m3 exits cleanly"

# ---- pull into a local store, prefetch, mount the store ----
S2=$T/store2
"$VMB_BIN" init "$S2" >/dev/null || fail "init $S2"
out=$("$VMB_BIN" pull -o "cache=$T/c2" --endpoint "$E" "$S2" "$U#vm" 2>&1)
assert_eq "pull --endpoint s3://...#vm into a store (exit 0)" 0 $? || say "$out"
assert_match "deps names the endpoint in the URL" "^remote [0-9a-f]{32} $(printf '%s' "$UE" | sed 's/[.+]/\\&/g')\$" \
    "$("$VMB_BIN" deps "$S2" vm)"
assert_match "the .remote layer keeps it" "^url s3\\+http://127\\.0\\.0\\.1:$S3_PORT/vmbtest/pub/v1\$" \
    "$(cat "$S2"/.vmbundlefs/layers/*.remote)"
out=$("$VMB_BIN" pull -o "cache=$T/c2" --endpoint "$E" "$S2" "$UE#vm" vmx 2>&1)
assert_eq "pull of the kept URL form itself (exit 0)" 0 $? || say "$out"
out=$("$VMB_BIN" pull -o "cache=$T/c2" --endpoint "http://127.0.0.1:$P" "$S2" "$UE#vm" vmy 2>&1); rc=$?
assert_eq "... with another endpoint: usage error (exit 2)" 2 "$rc"
assert_match "... saying it names its own" "names its endpoint already" "$out"
out=$(AWS_SECRET_ACCESS_KEY=wrong "$VMB_BIN" pull -o "cache=$T/c2w" --endpoint "$E" "$S2" "$U#vm" vmw 2>&1); rc=$?
assert_eq "pull with a wrong secret fails (exit 1)" 1 "$rc"
assert_match "... saying why" "SignatureDoesNotMatch\\) to access key 'S3RVER'" "$out"
check_fails "... and leaves no bundle" test -e "$S2/vmw"
printf '[default]\nendpoint_url = %s\n' "$E" >"$T/awsconfig"
out=$(AWS_CONFIG_FILE=$T/awsconfig "$VMB_BIN" pull -o "cache=$T/c2" "$S2" "$U#vm" vmc 2>&1)
assert_eq "pull with endpoint_url from the AWS config file (exit 0)" 0 $? || say "$out"
assert_match "... deps names that endpoint" "s3\\+http://127\\.0\\.0\\.1:$S3_PORT/" "$("$VMB_BIN" deps "$S2" vmc)"
out=$("$VMB_BIN" prefetch --endpoint "ftp://x" "$S2/vm/disk.img" 2>&1); rc=$?
assert_eq "prefetch --endpoint with a bad endpoint: usage error (exit 2)" 2 "$rc"
: >"$S3_LOG"
out=$("$VMB_BIN" prefetch -o "cache=$T/c2" "$S2/vm/disk.img" 2>&1)
assert_eq "prefetch of the pulled image, no endpoint given (exit 0)" 0 $? || say "$out"
assert_num "... fetched its chunks from the bucket" "$(grep -c '^GET /vmbtest/pub/v1/objects/.* 200 signed' "$S3_LOG")" -ge $((N_OBJ_CHUNKS - 1))
assert_num "... into the cache, verified" "$(cache_verify "$T/c2")" -ge "$N_OBJ_CHUNKS"
rmount st "$S2" -o "cache=$T/c2"
check "the store mounts (no endpoint given) and the pulled image reads byte for byte" cmp "$REF" "$T/st/$IMG"
out=$("$VMB_BIN" prefetch --endpoint "$E" "$T/st/$IMG" 2>&1); rc=$?
assert_eq "prefetch --endpoint on a mounted path: refused (exit 1)" 1 "$rc"
assert_match "... saying the daemon fetches" "whose daemon fetches" "$out"
check "prefetch through the mount" "$VMB_BIN" prefetch "$T/st/$IMG"
out=$("$VMB_BIN" pull --endpoint "$E" "$S2" "$U#vm" vmd 2>&1)
assert_eq "pull --endpoint into the mounted store, by its daemon (exit 0)" 0 $? || say "$out"
assert_match "... its deps name the endpoint" "s3\\+http://127\\.0\\.0\\.1:$S3_PORT/" "$("$VMB_BIN" deps "$S2" vmd)"
check "... and it reads byte for byte through the mount" cmp "$REF" "$T/st/vmd/disk.img"
rumount st || notok "the daemon of the store exits cleanly"

# a URL mount that read only the first MiB, for the offline part
rmount part "$U" -o "endpoint=$E,cache=$T/c-part"
check "a partial read (first MiB)" cmp -n $M "$REF" "$T/part/$IMG"
rumount part || notok "the daemon of part exits cleanly"

# ---- offline ----
s3_stop
say "# s3rver stopped"
rmount m1 "$U" -o "endpoint=$E,cache=$C"
ok "offline: the s3:// URL mounts from the cache"
check "offline: ... its image (cached whole) reads byte for byte" cmp "$REF" "$T/m1/$IMG"
rumount m1 || notok "the daemon of m1 exits cleanly (offline)"
rmount st "$S2" -o "cache=$T/c2"
check "offline: the store's prefetched image reads byte for byte" cmp "$REF" "$T/st/$IMG"
rumount st || notok "the daemon of the store exits cleanly (offline)"
rmount part "$U" -o "endpoint=$E,cache=$T/c-part"
check "offline: the cached first MiB reads" cmp -n $M "$REF" "$T/part/$IMG"
out=$("$RCMP" -b 262144 -O $((8 * M)) -n 2 "$T/part/$IMG" "$REF")
assert_eq "offline: an uncached part fails with EIO" "ok=0 eio=2 wrong=0 err=0" "$out"
rumount part || notok "the daemon of part exits cleanly (offline)"
out=$("$VMB_BIN" mount -o "cache=$T/c-off,endpoint=$E" "$U" "$T/bad" 2>&1); rc=$?
assert_eq "offline, nothing cached: the mount fails (exit 1)" 1 "$rc"
assert_match "... saying no index was saved" "no index of it was saved" "$out"
finish
