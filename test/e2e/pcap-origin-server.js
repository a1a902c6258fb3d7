/**
 * Origin for the pcap e2e test, run inside the test's network namespace: HTTP on an unusual port,
 * HTTPS (the test's self-signed certificate), and a DNS responder on port 53. Every request it
 * receives and every response it sends is printed as one JSON line: what was really on the wire,
 * from which the test builds the HAR to compare the capture with.
 * argv: httpPort httpsPort certFile keyFile
 */
'use strict';
const http = require('node:http');
const https = require('node:https');
const dgram = require('node:dgram');
const fs = require('node:fs');
const zlib = require('node:zlib');

const [httpPort, httpsPort, certFile, keyFile] = process.argv.slice(2);

function handler(scheme) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      let status = 200;
      let body = Buffer.from(`ok ${req.url}`);
      const headers = { 'Content-Type': 'text/plain' };
      if (req.url.startsWith('/gzip')) {
        body = zlib.gzipSync(Buffer.from(JSON.stringify({ status: 'registered', next: 3600 })));
        headers['Content-Type'] = 'application/json';
        headers['Content-Encoding'] = 'gzip';
      }
      const chunkedResponse = req.url.startsWith('/chunked');
      if (!chunkedResponse) headers['Content-Length'] = String(body.length);
      res.writeHead(status, headers);
      if (chunkedResponse) {
        res.write(body.subarray(0, 3));
        res.end(body.subarray(3));
      } else res.end(body);
      const sent = Object.entries(res.getHeaders()).map(([n, v]) => [n, String(v)]);
      process.stdout.write(JSON.stringify({
        scheme, method: req.method, url: req.url, rawHeaders: req.rawHeaders, httpVersion: req.httpVersion,
        body: Buffer.concat(chunks).toString('base64'), remotePort: req.socket.remotePort, at: Date.now(),
        status, responseHeaders: sent, responseBody: body.toString('base64'),
      }) + '\n');
    });
  };
}

const plain = http.createServer(handler('http'));
const secure = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, handler('https'));

/* A minimal DNS responder: answers every A question with 192.0.2.77 (TEST-NET-1). */
const dns = dgram.createSocket('udp4');
dns.on('message', (q, rinfo) => {
  let o = 12;
  while (o < q.length && q[o] !== 0) o += q[o] + 1;
  const question = q.subarray(12, o + 5);
  const header = Buffer.from(q.subarray(0, 12));
  header.writeUInt16BE(0x8180, 2); // response, RD, RA, NOERROR
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  header.writeUInt32BE(0, 8);
  const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 77]);
  dns.send(Buffer.concat([header, question, answer]), rinfo.port, rinfo.address);
});

let ready = 0;
const up = () => {
  if (++ready === 3) process.stdout.write('READY\n');
};
plain.listen(Number(httpPort), '127.0.0.1', up);
secure.listen(Number(httpsPort), '127.0.0.1', up);
dns.bind(53, '127.0.0.1', up);
process.on('SIGTERM', () => process.exit(0));
