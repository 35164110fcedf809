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
const path = require('path');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

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

// s3rver 3.7.1 answers a PUT before the object's bytes are on its disk (putObject
// resolves when it has handed them to a write stream, not when the stream is closed),
// and overwrites an object in place: a GET right after a PUT, or during one, can get
// a truncated body with a Content-Length to match. S3 itself has read-after-write
// consistency and atomic replacement. Two mends bring the test server to that:
// putObject resolves once its file is written and closed, and the front below lets
// requests for one key through as a readers-writer lock would (GET and HEAD share,
// any other method is alone) until their response has been sent.
FilesystemStore.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const [size, md5] = await new Promise((resolve, reject) => {
    const ws = fs.createWriteStream(objectPath);
    const h = crypto.createHash('md5');
    let n = 0;
    ws.on('error', reject);
    ws.on('close', () => resolve([n, h.digest('hex')]));
    if (Buffer.isBuffer(object.content)) {
      h.update(object.content);
      n = object.content.length;
      ws.end(object.content);
    } else {
      object.content.on('error', reject);
      object.content.on('data', (c) => { h.update(c); n += c.length; });
      object.content.pipe(ws);
    }
  });
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};

const keyLocks = new Map();   // path -> { readers, writer, queue: [ [exclusive, go] ] }
function lockKey(key, exclusive, go) {
  let l = keyLocks.get(key);
  if (!l) keyLocks.set(key, (l = { readers: 0, writer: false, queue: [] }));
  l.queue.push([exclusive, go]);
  pump(key, l);
}
function pump(key, l) {
  while (l.queue.length && !l.writer) {
    const [exclusive, go] = l.queue[0];
    if (exclusive && l.readers) break;
    l.queue.shift();
    if (exclusive) l.writer = true; else l.readers++;
    let done = false;
    go(() => {
      if (done) return;
      done = true;
      if (exclusive) l.writer = false; else l.readers--;
      pump(key, l);
    });
    if (exclusive) break;
  }
  if (!l.queue.length && !l.writer && !l.readers) keyLocks.delete(key);
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
      const shared = req.method === 'GET' || req.method === 'HEAD';
      lockKey(new URL(req.url, 'http://x').pathname, !shared, (unlock) => {
        res.on('close', unlock);
        res.on('finish', unlock);
        const up = http.request({ host: '127.0.0.1', port: bport, method: req.method, path: req.url, headers }, (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
          line(ur.statusCode);
        });
        up.on('error', (e) => {
          if (res.headersSent) { line('reset'); res.destroy(); return; }
          line(s3error(res, 502, 'BadGateway', String(e)));
        });
        up.end(body);
      });
    });
  });
  front.keepAliveTimeout = 30000;
  front.listen(+port, '127.0.0.1', () => console.log('ready'));
});
