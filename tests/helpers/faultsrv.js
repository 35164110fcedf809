// faultsrv.js - a small HTTP/1.1 server with faults on demand, for tests/fetch-faults.sh.
// Every object is 65536 bytes of a fixed pattern (byte i = (i * 7 + 3) & 255). The
// first path component picks the fault, the second how many requests of that path
// (counted per full path) get it before the path is served right:
//   /ok/0/NAME         served right (ranges honoured: 206 + Content-Range)
//   /trunc/N/NAME      Content-Length 65536, 1000 bytes, then the connection closes
//   /reset/N/NAME      the connection is destroyed without an answer
//   /e500/N/NAME, /e503/N/NAME, /e429/N/NAME   that status
//   /stall/N/NAME      headers and 100 bytes, then nothing (the client must time out)
//   /whole/0/NAME      ranges ignored: 200 and the whole object
//   /badrange/0/NAME   206 with a Content-Range that starts elsewhere
//   /redir/0/NAME      302 to /ok/0/NAME
//   /e403/0/NAME       403
//   /short/0/NAME      objects of 1000 bytes (for ranges past the end)
//   /late/MS/NAME      served right, MS milliseconds after the request
//   node faultsrv.js PORT LOG    (LOG: one line "METHOD URL" per request)
'use strict';
const http = require('http');
const fs = require('fs');
const [port, logFile] = process.argv.slice(2);
const SIZE = 65536;
const whole = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) whole[i] = (i * 7 + 3) & 255;
const seen = new Map();

function serve(req, res, obj, ignoreRange, badRange) {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers['range'] || '');
  if (m && !ignoreRange) {
    const a = +m[1], b = Math.min(+m[2], obj.length - 1);
    if (a >= obj.length) {
      res.writeHead(416, { 'content-range': `bytes */${obj.length}` });
      return res.end();
    }
    const start = badRange ? a + 1 : a;
    res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${start}-${b}/${obj.length}` });
    return res.end(req.method === 'HEAD' ? undefined : obj.subarray(a, b + 1));
  }
  res.writeHead(200, { 'content-length': obj.length });
  res.end(req.method === 'HEAD' ? undefined : obj);
}

const srv = http.createServer((req, res) => {
  fs.appendFileSync(logFile, `${req.method} ${req.url}\n`);
  const parts = req.url.split('/');
  const kind = parts[1], n = +parts[2] || 0;
  const count = (seen.get(req.url) || 0) + 1;
  seen.set(req.url, count);
  const fault = count <= n;
  switch (kind) {
    case 'trunc':
      if (!fault) break;
      res.writeHead(200, { 'content-length': SIZE });
      res.write(whole.subarray(0, 1000));
      return setTimeout(() => req.socket.destroy(), 20);
    case 'reset':
      if (!fault) break;
      return req.socket.destroy();
    case 'e500': case 'e503': case 'e429':
      if (!fault) break;
      res.writeHead(+kind.slice(1), { 'content-length': 0 });
      return res.end();
    case 'stall':
      if (!fault) break;
      res.writeHead(200, { 'content-length': SIZE });
      res.write(whole.subarray(0, 100));
      return;   // never ends; the client gives up
    case 'whole':
      return serve(req, res, whole, true, false);
    case 'badrange':
      return serve(req, res, whole, false, true);
    case 'redir':
      res.writeHead(302, { location: '/ok/0/' + parts.slice(3).join('/'), 'content-length': 0 });
      return res.end();
    case 'e403':
      res.writeHead(403, { 'content-length': 0 });
      return res.end();
    case 'late':   // /late/MS/...: the answer after MS milliseconds
      return setTimeout(() => serve(req, res, whole, false, false), n);
    case 'short':
      return serve(req, res, whole.subarray(0, 1000), false, false);
  }
  serve(req, res, whole, false, false);
});
srv.keepAliveTimeout = 30000;
srv.listen(+port, '127.0.0.1', () => console.log('ready'));
