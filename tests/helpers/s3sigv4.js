// s3sigv4.js - an S3 server for tests/fetch-s3.sh: s3rver (npm) behind a front that
// checks AWS Signature Version 4 header authentication, which s3rver 3.x does not
// ("Signature version 4 calculation is unimplemented"). The check is written here from
// the AWS documentation, independently of libcurl's signer: canonical request, string
// to sign, signing key, signature; every x-amz-* header and host must be signed; the
// x-amz-content-sha256 header must be present and, unless UNSIGNED-PAYLOAD, equal the
// SHA-256 of the body; x-amz-date within 15 minutes. A request without an
// Authorization header passes unsigned (a public bucket).
//
//   node s3sigv4.js DATA_DIR PORT BUCKET LOG   (NODE_PATH must find s3rver)
// Keys: S3SIGV4_KEY / S3SIGV4_SECRET (default S3RVER / S3RVER). While the file named by
// S3SIGV4_PRIVATE_FLAG exists, the bucket is private: an unsigned request gets 403
// AccessDenied. LOG gets one line per
// request: "METHOD PATH STATUS signed|unsigned token=<x-amz-security-token or ->".
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const S3rver = require('s3rver');

const [dataDir, port, bucket, logFile] = process.argv.slice(2);
const KEY = process.env.S3SIGV4_KEY || 'S3RVER';
const SECRET = process.env.S3SIGV4_SECRET || 'S3RVER';
const PRIVATE = process.env.S3SIGV4_PRIVATE_FLAG || '';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function s3error(res, status, code, msg) {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${msg}</Message></Error>`);
  return status;
}

// null when the request is well signed, else [status, code, message]
function verify(req, body) {
  const auth = req.headers['authorization'];
  if (!auth && PRIVATE && fs.existsSync(PRIVATE)) return [403, 'AccessDenied', 'Access Denied'];
  if (!auth) return null;
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return [400, 'AuthorizationHeaderMalformed', 'cannot parse ' + auth];
  const [, key, day, region, signedList, sig] = m;
  if (key !== KEY) return [403, 'InvalidAccessKeyId', 'unknown key ' + key];
  const date = req.headers['x-amz-date'];
  if (!date || !date.startsWith(day)) return [403, 'AccessDenied', 'x-amz-date missing or not of the credential day'];
  const t = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15));
  if (Math.abs(Date.now() - t) > 15 * 60 * 1000) return [403, 'RequestTimeTooSkewed', 'x-amz-date ' + date];
  const payload = req.headers['x-amz-content-sha256'];
  if (!payload) return [400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
  if (payload !== 'UNSIGNED-PAYLOAD' && payload !== sha256(body)) return [400, 'XAmzContentSHA256Mismatch', 'payload hash ' + payload];
  const signed = signedList.split(';');
  for (const h of Object.keys(req.headers))
    if ((h.startsWith('x-amz-') || h === 'host') && !signed.includes(h)) return [403, 'AccessDenied', 'header not signed: ' + h];
  const url = new URL(req.url, 'http://x');
  const path = url.pathname.split('/').map((s) => enc(decodeURIComponent(s))).join('/');
  const query = [...url.searchParams].map(([k, v]) => enc(k) + '=' + enc(v)).sort().join('&');
  const canon = [req.method, path, query,
    signed.map((h) => h + ':' + String(req.headers[h] || '').trim().replace(/ +/g, ' ')).join('\n') + '\n',
    signedList, payload].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', date, scope, sha256(canon)].join('\n');
  const k = hmac(hmac(hmac(hmac('AWS4' + SECRET, day), region), 's3'), 'aws4_request');
  if (crypto.createHmac('sha256', k).update(sts).digest('hex') !== sig)
    return [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return null;
}

const backend = new S3rver({ port: 0, address: '127.0.0.1', directory: dataDir, silent: true,
  configureBuckets: [{ name: bucket }] });
backend.run().then(({ port: bport }) => {
  const front = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const bad = verify(req, body);
      const line = (st) => fs.appendFileSync(logFile, `${req.method} ${req.url} ${st} ${req.headers['authorization'] ? 'signed' : 'unsigned'} token=${req.headers['x-amz-security-token'] || '-'}\n`);
      if (bad) return line(s3error(res, ...bad));
      const headers = { ...req.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const up = http.request({ host: '127.0.0.1', port: bport, method: req.method, path: req.url, headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
        line(ur.statusCode);
      });
      up.on('error', (e) => { line(s3error(res, 502, 'BadGateway', String(e))); });
      up.end(body);
    });
  });
  front.keepAliveTimeout = 30000;
  front.listen(+port, '127.0.0.1', () => console.log('ready'));
});
