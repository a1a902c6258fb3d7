/**
 * Containment of failures in connection handling. In-process: a listener body that throws or
 * rejects is logged with client, method and truncated target, and only its connection is closed.
 * In a child process (the last-resort handler changes process-wide behaviour, so never in Jest's
 * own process): an exception thrown later from a callback a connection's handling started (an
 * upstream socket's listener) closes that client's connection and the server keeps serving real
 * clients; an exception outside every connection ends the process with status 1, as Node would.
 */
import { spawn } from 'child_process';
import * as net from 'net';
import * as path from 'path';
import { contained, describeConnection } from '../../../proxy/capture/containment';

const DIST_MODULE = path.join(__dirname, '..', '..', '..', 'dist', 'proxy', 'capture', 'containment.js');

describe('contained listeners', () => {
  it('logs a synchronous throw with client, method and a truncated target, and runs the recovery', () => {
    const lines: string[] = [];
    let recovered = 0;
    contained((l) => lines.push(l), 'request', { client: '192.168.1.20:5000', method: 'GET', target: `/${'x'.repeat(500)}` }, () => {
      throw new Error('bad input');
    }, () => recovered++);
    expect(recovered).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^request failed for client 192\.168\.1\.20:5000 "GET" "\/x{99}…": Error: bad input/);
    expect(lines[0].length).toBeLessThan(2000);
  });

  it('closes the connection when an async listener rejects', async () => {
    const lines: string[] = [];
    const socket = new net.Socket();
    contained((l) => lines.push(l), 'CONNECT', { client: '10.0.0.2', method: 'CONNECT', target: 'a:1', socket }, async () => {
      await new Promise((r) => setImmediate(r));
      throw new Error('later');
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(lines[0]).toMatch(/^CONNECT failed for client 10\.0\.0\.2 "CONNECT" "a:1": Error: later/);
    expect(socket.destroyed).toBe(true);
  });

  it('describes hostile text as JSON strings, on one line', () => {
    expect(describeConnection({ client: '1.2.3.4', method: 'G\r\nET', target: 'a\nb' })).toBe('client 1.2.3.4 "G\\r\\nET" "a\\nb"');
  });
});

/** Runs `script` in a child Node process; resolves with its exit code and output. */
function runNode(script: string, onStdout?: (text: string) => void): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; pid: number } {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
    onStdout?.(stdout);
  });
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return { done, pid: child.pid! };
}

/** One request-response exchange with the child's server: resolves with what came back before close. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    s.on('data', (d) => (got += d));
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

describe('last-resort handler (child process)', () => {
  it('an exception in a callback started by one connection closes that connection; the process keeps serving', async () => {
    // The server answers "ok <line>" through an upstream echo; the line "boom" makes the upstream's
    // data listener throw, outside any try/catch, as a bug in the proxy's relay would; "bang" makes
    // the client socket's own data listener throw (its events are scoped with scopeEvents).
    const script = `
      const net = require('net');
      const { installLastResortHandler, inConnection, scopeEvents } = require(${JSON.stringify(DIST_MODULE)});
      installLastResortHandler((line) => console.log('LOG ' + line.split('\\n')[0]));
      const echo = net.createServer((s) => s.pipe(s));
      echo.listen(0, '127.0.0.1', () => {
        const server = net.createServer((client) => {
          scopeEvents(client, { client: 'raw-' + client.remotePort, socket: client });
          client.once('data', (line) => {
            if (String(line) === 'bang') throw new Error('sniffer bug');
            inConnection({ client: 'client-' + client.remotePort, method: 'GET', target: String(line), socket: client }, () => {
              const up = net.connect(echo.address().port, '127.0.0.1', () => up.write(line));
              up.on('data', (d) => {
                if (String(d) === 'boom') throw new Error('relay bug');
                client.end('ok ' + d);
                up.destroy();
              });
            });
          });
        });
        server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
      });
    `;
    let portSeen: (port: number) => void = () => undefined;
    const port = new Promise<number>((resolve) => (portSeen = resolve));
    const child = runNode(script, (out) => {
      const m = /PORT (\d+)/.exec(out);
      if (m) portSeen(Number(m[1]));
    });
    try {
      const p = await port;
      expect(await exchange(p, 'first')).toBe('ok first');
      expect(await exchange(p, 'boom')).toBe('');
      expect(await exchange(p, 'after')).toBe('ok after');
      expect(await exchange(p, 'bang')).toBe('');
      expect(await exchange(p, 'last')).toBe('ok last');
    } finally {
      process.kill(child.pid, 'SIGTERM');
    }
    const { stdout } = await child.done;
    expect(stdout).toMatch(/LOG internal error while handling client client-\d+ "GET" "boom" \(uncaughtException\); that connection is closed, phonehome keeps running: Error: relay bug/);
    expect(stdout).toMatch(/LOG internal error while handling client raw-\d+ \(uncaughtException\); that connection is closed, phonehome keeps running: Error: sniffer bug/);
  });

  it('an exception outside every connection is printed and ends the process with status 1', async () => {
    const script = `
      const { installLastResortHandler } = require(${JSON.stringify(DIST_MODULE)});
      installLastResortHandler((line) => console.log('LOG ' + line));
      setTimeout(() => { throw new Error('not a connection'); }, 10);
      setTimeout(() => console.log('still running'), 2000);
    `;
    const { code, stdout, stderr } = await runNode(script).done;
    expect(code).toBe(1);
    expect(stderr).toMatch(/phonehome: fatal internal error \(uncaughtException\), exiting: Error: not a connection/);
    expect(stdout).not.toMatch(/still running|LOG/);
  });
});
