/**
 * Reads the TLS ClientHello a phone sends first in a tunnel: is it TLS at all, which name (SNI) and
 * which application protocols (ALPN) does it ask for. Incremental: the hello may arrive split over
 * TCP segments or TLS records, so the caller feeds what it has and asks again with more. Hostile
 * bytes give a verdict ('not-tls' or 'invalid'), never an exception.
 */

export type ClientHelloResult =
  | { status: 'need-more' }
  | { status: 'not-tls' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; hello: ClientHello };

export interface ClientHello {
  sni?: string;
  alpn: string[];
  /** Highest version offered: from supported_versions when present, else the legacy field (e.g. 'TLSv1.3'). */
  version: string;
}

/** A ClientHello larger than this (post-quantum key shares are ~2 KB) is refused as hostile. */
export const MAX_CLIENT_HELLO_BYTES = 64 * 1024;

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const EXT_SUPPORTED_VERSIONS = 0x002b;

/** True when the first bytes could start a TLS handshake record (cheap pre-check for sniffing). */
export function looksLikeTls(data: Buffer): boolean {
  if (data.length === 0) return false;
  if (data[0] !== RECORD_HANDSHAKE) return false;
  if (data.length >= 2 && data[1] !== 0x03) return false;
  return true;
}

export function parseClientHello(data: Buffer): ClientHelloResult {
  if (!looksLikeTls(data)) return { status: 'not-tls' };
  const handshake: Buffer[] = [];
  let collected = 0;
  let offset = 0;
  let needed = -1;
  while (true) {
    if (offset + 5 > data.length) return tooLong(data) ?? { status: 'need-more' };
    if (data[offset] !== RECORD_HANDSHAKE) return { status: 'invalid', reason: 'non-handshake record before the ClientHello was complete' };
    if (data[offset + 1] !== 0x03) return { status: 'invalid', reason: 'bad record version' };
    const recordLength = data.readUInt16BE(offset + 3);
    if (recordLength === 0 || recordLength > 16384 + 2048) return { status: 'invalid', reason: `bad record length ${recordLength}` };
    if (offset + 5 + recordLength > data.length) return tooLong(data) ?? { status: 'need-more' };
    const fragment = data.subarray(offset + 5, offset + 5 + recordLength);
    handshake.push(fragment);
    collected += fragment.length;
    offset += 5 + recordLength;
    if (needed < 0 && collected >= 4) {
      const head = Buffer.concat(handshake);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { status: 'invalid', reason: `first handshake message is type ${head[0]}, not ClientHello` };
      needed = 4 + head.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO_BYTES) return { status: 'invalid', reason: 'ClientHello too large' };
    }
    if (needed >= 0 && collected >= needed) {
      const body = Buffer.concat(handshake).subarray(4, needed);
      return parseBody(body);
    }
  }
}

function tooLong(data: Buffer): ClientHelloResult | undefined {
  return data.length > MAX_CLIENT_HELLO_BYTES + 1024 ? { status: 'invalid', reason: 'ClientHello too large' } : undefined;
}

class Reader {
  constructor(private readonly buf: Buffer, public pos = 0) {}
  remaining(): number {
    return this.buf.length - this.pos;
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new RangeError('truncated');
  }
}

function versionName(v: number): string {
  switch (v) {
    case 0x0304: return 'TLSv1.3';
    case 0x0303: return 'TLSv1.2';
    case 0x0302: return 'TLSv1.1';
    case 0x0301: return 'TLSv1';
    case 0x0300: return 'SSLv3';
    default: return `0x${v.toString(16).padStart(4, '0')}`;
  }
}

function parseBody(body: Buffer): ClientHelloResult {
  try {
    const r = new Reader(body);
    const legacyVersion = r.u16();
    r.bytes(32);
    r.bytes(r.u8());
    r.bytes(r.u16());
    r.bytes(r.u8());
    const hello: ClientHello = { alpn: [], version: versionName(legacyVersion) };
    if (r.remaining() === 0) return { status: 'ok', hello };
    const ext = new Reader(r.bytes(r.u16()));
    while (ext.remaining() > 0) {
      const type = ext.u16();
      const data = new Reader(ext.bytes(ext.u16()));
      if (type === EXT_SERVER_NAME) hello.sni = readServerName(data);
      else if (type === EXT_ALPN) hello.alpn = readAlpn(data);
      else if (type === EXT_SUPPORTED_VERSIONS) {
        const list = new Reader(data.bytes(data.u8()));
        let best = 0;
        while (list.remaining() >= 2) {
          const v = list.u16();
          if ((v & 0x0f0f) !== 0x0a0a && v > best && v <= 0x0304) best = v; // skip GREASE
        }
        if (best) hello.version = versionName(best);
      }
    }
    return { status: 'ok', hello };
  } catch {
    return { status: 'invalid', reason: 'malformed ClientHello' };
  }
}

function readServerName(data: Reader): string | undefined {
  const list = new Reader(data.bytes(data.u16()));
  while (list.remaining() > 0) {
    const nameType = list.u8();
    const name = list.bytes(list.u16());
    if (nameType === 0) return name.toString('latin1');
  }
  return undefined;
}

function readAlpn(data: Reader): string[] {
  const list = new Reader(data.bytes(data.u16()));
  const out: string[] = [];
  while (list.remaining() > 0) out.push(list.bytes(list.u8()).toString('latin1'));
  return out;
}
