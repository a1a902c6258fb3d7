/**
 * Why: the benchmark's origin servers run in their own process so that serving requests does not
 * compete with the load generator's event loop. Plain HTTP and HTTPS (certificate given on stdin
 * as JSON) on loopback; prints `{"http":PORT,"https":PORT}` once both listen.
 *   GET /small → 100 bytes; POST /upload → reads the body, answers its length; GET /1mb → 1 MiB.
 */
import * as http from 'http';
import * as https from 'https';
import type * as net from 'net';

const SMALL = Buffer.alloc(100, 'x');
const ONE_MB = Buffer.alloc(1024 * 1024, 'y');

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method === 'POST') {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => {
      const body = Buffer.from(String(size));
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
      res.end(body);
    });
    return;
  }
  const body = req.url === '/1mb' ? ONE_MB : SMALL;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
  res.end(body);
}

async function main(): Promise<void> {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const { key, cert } = JSON.parse(input) as { key: string; cert: string };
  const plain = http.createServer({ keepAlive: true, noDelay: true }, handle);
  const secure = https.createServer({ key, cert, keepAlive: true, noDelay: true }, handle);
  plain.keepAliveTimeout = secure.keepAliveTimeout = 60000;
  await Promise.all([plain, secure].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const port = (s: http.Server) => (s.address() as net.AddressInfo).port;
  process.stdout.write(JSON.stringify({ http: port(plain), https: port(secure) }) + '\n');
  process.on('SIGTERM', () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
