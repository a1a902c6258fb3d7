/**
 * DNS wire format (RFC 1035 and friends), parsed and built without a resolver library: VPN mode
 * forwards and records every lookup a phone makes, pcap import reads them from captures, and both
 * need names, types and answers as text. Input comes from the phone or a capture file, so parsing
 * is strict and bounded: compression pointers must point backwards (no loops), names stay within
 * 255 bytes, and every read is checked against the message length (DnsParseError, never a crash).
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../tunnel/ip/address';

export class DnsParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsParseError';
  }
}

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  41: 'OPT', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY',
};
const TYPE_CODES: Record<string, number> = Object.fromEntries(
  Object.entries(TYPE_NAMES).map(([code, name]) => [name, Number(code)]),
);
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const SVC_KEYS = ['mandatory', 'alpn', 'no-default-alpn', 'port', 'ipv4hint', 'ech', 'ipv6hint'];

export function typeName(code: number): string {
  return TYPE_NAMES[code] ?? `TYPE${code}`;
}

export function typeCode(name: string): number {
  const upper = name.toUpperCase();
  const known = TYPE_CODES[upper];
  if (known !== undefined) return known;
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  if (m && Number(m[1]) <= 0xffff) return Number(m[1]);
  throw new Error(`unknown DNS type: ${name}`);
}

export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

export function rcodeCode(name: string): number {
  const i = RCODE_NAMES.indexOf(name.toUpperCase());
  if (i >= 0) return i;
  const m = /^RCODE(\d+)$/.exec(name.toUpperCase());
  if (m && Number(m[1]) < 16) return Number(m[1]);
  throw new Error(`unknown DNS rcode: ${name}`);
}

export interface DnsQuestion {
  /** Presentation form without the trailing dot ('' is the root). */
  name: string;
  type: string;
  typeCode: number;
  class: number;
}

export interface DnsResourceRecord extends DnsQuestion {
  ttl: number;
  /** Presentation text of the RDATA (addresses, names, 'pref exchange', quoted TXT strings, ...). */
  data: string;
}

export interface DnsMessage {
  id: number;
  /** true for a response. */
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  rcodeName: string;
  questions: DnsQuestion[];
  answers: DnsResourceRecord[];
  authorities: DnsResourceRecord[];
  additionals: DnsResourceRecord[];
}

const MAX_NAME_WIRE = 255;

class Reader {
  constructor(readonly buf: Buffer, public pos = 0) {}

  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new DnsParseError(`truncated ${what} at byte ${this.pos}`);
  }

  u8(what: string): number { this.need(1, what); return this.buf[this.pos++]; }
  u16(what: string): number { this.need(2, what); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  u32(what: string): number { this.need(4, what); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
  bytes(n: number, what: string): Buffer { this.need(n, what); const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b; }

  /** A possibly compressed name; advances past it (past the first pointer if there is one). */
  name(): string {
    const labels: string[] = [];
    let wire = 1; // the terminating zero byte
    let pos = this.pos;
    let jumped = false;
    // Each pointer must go strictly before the start of the label sequence that holds it, so
    // following pointers always makes progress towards the start of the message: no loops.
    let floor = pos;
    for (;;) {
      if (pos >= this.buf.length) throw new DnsParseError(`truncated name at byte ${pos}`);
      const len = this.buf[pos];
      if (len === 0) { pos += 1; break; }
      const kind = len & 0xc0;
      if (kind === 0xc0) {
        if (pos + 1 >= this.buf.length) throw new DnsParseError(`truncated name pointer at byte ${pos}`);
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1];
        if (target >= floor) throw new DnsParseError(`name pointer at byte ${pos} does not point backwards (to ${target})`);
        if (!jumped) { this.pos = pos + 2; jumped = true; }
        pos = target;
        floor = target;
        continue;
      }
      if (kind !== 0) throw new DnsParseError(`unsupported label type 0x${kind.toString(16)} at byte ${pos}`);
      if (pos + 1 + len > this.buf.length) throw new DnsParseError(`truncated label at byte ${pos}`);
      wire += len + 1;
      if (wire > MAX_NAME_WIRE) throw new DnsParseError(`name longer than ${MAX_NAME_WIRE} bytes at byte ${pos}`);
      labels.push(labelText(this.buf.subarray(pos + 1, pos + 1 + len)));
      pos += 1 + len;
    }
    if (!jumped) this.pos = pos;
    return labels.join('.');
  }
}

/** Printable label bytes as is; '.', '\\' escaped; other bytes as \DDD (RFC 4343 presentation). */
function labelText(b: Buffer): string {
  let s = '';
  for (const c of b) {
    if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\${c.toString().padStart(3, '0')}`;
  }
  return s;
}

function characterString(b: Buffer): string {
  let s = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\${c.toString().padStart(3, '0')}`;
  }
  return `${s}"`;
}

function readQuestion(r: Reader): DnsQuestion {
  const name = r.name();
  const code = r.u16('question type');
  return { name, type: typeName(code), typeCode: code, class: r.u16('question class') };
}

function readRecord(r: Reader): DnsResourceRecord {
  const name = r.name();
  const code = r.u16('record type');
  const cls = r.u16('record class');
  const ttl = r.u32('record ttl');
  const rdlength = r.u16('record length');
  r.need(rdlength, 'record data');
  const start = r.pos;
  const end = start + rdlength;
  // RDATA is parsed by a reader limited to the record (names inside it may still point backwards
  // anywhere in the message), so a lying length cannot make it read the next record.
  const data = rdataText(code, r.buf, start, end);
  r.pos = end;
  return { name, type: typeName(code), typeCode: code, class: cls, ttl, data };
}

function rdataText(code: number, buf: Buffer, start: number, end: number): string {
  const r = new Reader(buf.subarray(0, end), start);
  const done = (s: string): string => {
    if (r.pos !== end) throw new DnsParseError(`${typeName(code)} record data has ${end - r.pos} extra bytes at byte ${r.pos}`);
    return s;
  };
  switch (code) {
    case 1:
      if (end - start !== 4) throw new DnsParseError(`A record of ${end - start} bytes at byte ${start}`);
      return formatIpv4(buf, start);
    case 28:
      if (end - start !== 16) throw new DnsParseError(`AAAA record of ${end - start} bytes at byte ${start}`);
      return formatIpv6(buf, start);
    case 2: case 5: case 12:
      return done(dotted(r.name()));
    case 15: {
      const pref = r.u16('MX preference');
      return done(`${pref} ${dotted(r.name())}`);
    }
    case 16: {
      const parts: string[] = [];
      while (r.pos < end) parts.push(characterString(r.bytes(r.u8('TXT length'), 'TXT string')));
      return parts.join(' ');
    }
    case 6: {
      const mname = dotted(r.name());
      const rname = dotted(r.name());
      const nums = [0, 1, 2, 3, 4].map(() => r.u32('SOA field'));
      return done(`${mname} ${rname} ${nums.join(' ')}`);
    }
    case 33: {
      const [prio, weight, port] = [r.u16('SRV priority'), r.u16('SRV weight'), r.u16('SRV port')];
      return done(`${prio} ${weight} ${port} ${dotted(r.name())}`);
    }
    case 64: case 65:
      return svcbText(r, end);
    default:
      return unknownRdata(buf.subarray(start, end));
  }
}

function dotted(name: string): string {
  return `${name}.`;
}

function unknownRdata(b: Buffer): string {
  return b.length ? `\\# ${b.length} ${b.toString('hex')}` : '\\# 0';
}

/** SVCB/HTTPS (RFC 9460): 'priority target key=value ...'. */
function svcbText(r: Reader, end: number): string {
  const priority = r.u16('SVCB priority');
  // The target name is never compressed (RFC 9460 2.2), but reading it with pointers is harmless.
  const parts = [String(priority), dotted(r.name())];
  while (r.pos < end) {
    const key = r.u16('SVCB key');
    const len = r.u16('SVCB value length');
    const v = r.bytes(len, 'SVCB value');
    parts.push(svcParam(key, v));
  }
  return parts.join(' ');
}

function svcParam(key: number, v: Buffer): string {
  const name = SVC_KEYS[key] ?? `key${key}`;
  const list = (size: number, fmt: (o: number) => string): string | undefined => {
    if (v.length === 0 || v.length % size !== 0) return undefined;
    const out: string[] = [];
    for (let o = 0; o < v.length; o += size) out.push(fmt(o));
    return out.join(',');
  };
  let text: string | undefined;
  switch (key) {
    case 0: text = list(2, (o) => SVC_KEYS[v.readUInt16BE(o)] ?? `key${v.readUInt16BE(o)}`); break;
    case 1: {
      const ids: string[] = [];
      let o = 0;
      while (o < v.length && o + 1 + v[o] <= v.length) { ids.push(v.subarray(o + 1, o + 1 + v[o]).toString('latin1')); o += 1 + v[o]; }
      text = o === v.length ? ids.join(',') : undefined;
      break;
    }
    case 2: if (v.length === 0) return name; break;
    case 3: text = v.length === 2 ? String(v.readUInt16BE(0)) : undefined; break;
    case 4: text = list(4, (o) => formatIpv4(v, o)); break;
    case 5: text = v.toString('base64'); break;
    case 6: text = list(16, (o) => formatIpv6(v, o)); break;
  }
  return `${name}=${text ?? v.toString('hex')}`;
}

/** Parses a whole DNS message (as carried in one UDP datagram, or a TCP message without its length prefix). */
export function parseDnsMessage(buf: Buffer): DnsMessage {
  const r = new Reader(buf);
  if (buf.length < 12) throw new DnsParseError(`message of ${buf.length} bytes is shorter than the 12-byte header`);
  const id = r.u16('id');
  const flags = r.u16('flags');
  const counts = [r.u16('qdcount'), r.u16('ancount'), r.u16('nscount'), r.u16('arcount')];
  // Each question takes at least 5 bytes and each record at least 11: reject absurd counts before looping.
  if (counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11 > buf.length - 12) {
    throw new DnsParseError(`counts ${counts.join('/')} do not fit in ${buf.length} bytes`);
  }
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) questions.push(readQuestion(r));
  const section = (n: number): DnsResourceRecord[] => {
    const out: DnsResourceRecord[] = [];
    for (let i = 0; i < n; i++) out.push(readRecord(r));
    return out;
  };
  const answers = section(counts[1]);
  const authorities = section(counts[2]);
  const additionals = section(counts[3]);
  const rcode = flags & 0x0f;
  return {
    id, qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0x0f, aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0, rd: (flags & 0x0100) !== 0, ra: (flags & 0x0080) !== 0,
    rcode, rcodeName: rcodeName(rcode), questions, answers, authorities, additionals,
  };
}

/** Reads just the header and first question, for a query whose other sections may be malformed. */
export function peekDnsQuestion(buf: Buffer): { id: number; flags: number; question?: DnsQuestion } {
  if (buf.length < 12) throw new DnsParseError(`message of ${buf.length} bytes is shorter than the 12-byte header`);
  const r = new Reader(buf, 12);
  const qd = buf.readUInt16BE(4);
  return { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), question: qd > 0 ? readQuestion(r) : undefined };
}

// ---- building -----------------------------------------------------------------------------------

/** A record to build; `data` uses the same presentation text the parser produces, or raw RDATA bytes. */
export interface DnsRecordInput {
  name: string;
  type: string;
  ttl?: number;
  class?: number;
  data: string | Buffer;
}

export interface DnsMessageInput {
  id: number;
  qr?: boolean;
  opcode?: number;
  aa?: boolean;
  tc?: boolean;
  rd?: boolean;
  ra?: boolean;
  rcode?: number;
  questions?: { name: string; type: string; class?: number }[];
  answers?: DnsRecordInput[];
  authorities?: DnsRecordInput[];
  additionals?: DnsRecordInput[];
}

/** Wire form of a name in presentation text (\. and \DDD escapes understood); uncompressed. */
export function encodeName(name: string): Buffer {
  const text = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  const labels: Buffer[] = [];
  let cur: number[] = [];
  const flush = (): void => {
    if (cur.length === 0) throw new Error(`empty label in ${JSON.stringify(name)}`);
    if (cur.length > 63) throw new Error(`label longer than 63 bytes in ${JSON.stringify(name)}`);
    labels.push(Buffer.from([cur.length, ...cur]));
    cur = [];
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '.') { flush(); continue; }
    if (ch === '\\') {
      const dec = /^\d{3}/.exec(text.slice(i + 1));
      if (dec) { cur.push(Number(dec[0]) & 0xff); i += 3; } else { cur.push(text.charCodeAt(i + 1) & 0xff); i += 1; }
      continue;
    }
    cur.push(text.charCodeAt(i) & 0xff);
  }
  if (text.length > 0) flush();
  const out = Buffer.concat([...labels, Buffer.from([0])]);
  if (out.length > MAX_NAME_WIRE) throw new Error(`name longer than ${MAX_NAME_WIRE} bytes: ${name.slice(0, 40)}...`);
  return out;
}

function txtStrings(data: string): Buffer {
  const out: Buffer[] = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(data))) {
    const bytes = Buffer.from(m[1].replace(/\\(\d{3}|.)/g, (_, e: string) => String.fromCharCode(e.length === 3 ? Number(e) : e.charCodeAt(0))), 'latin1');
    out.push(Buffer.from([bytes.length]), bytes);
  }
  return Buffer.concat(out);
}

function rdataBytes(type: number, data: string): Buffer {
  const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
  switch (type) {
    case 1: return parseIpv4(data);
    case 28: return parseIpv6(data);
    case 2: case 5: case 12: return encodeName(data);
    case 15: { const [pref, host] = data.split(/\s+/); return Buffer.concat([u16(Number(pref)), encodeName(host)]); }
    case 16: return txtStrings(data);
    default: {
      const m = /^\\#\s+(\d+)\s*([0-9a-fA-F\s]*)$/.exec(data);
      if (!m) throw new Error(`cannot build ${typeName(type)} data from text; pass a Buffer`);
      return Buffer.from(m[2].replace(/\s/g, ''), 'hex');
    }
  }
}

function recordBytes(rec: DnsRecordInput): Buffer {
  const code = typeCode(rec.type);
  const rdata = Buffer.isBuffer(rec.data) ? rec.data : rdataBytes(code, rec.data);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(code, 0);
  fixed.writeUInt16BE(rec.class ?? 1, 2);
  fixed.writeUInt32BE(rec.ttl ?? 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(rec.name), fixed, rdata]);
}

/** Builds a DNS message without name compression (always valid, a little larger). */
export function buildDnsMessage(m: DnsMessageInput): Buffer {
  const header = Buffer.alloc(12);
  const flags = (m.qr ? 0x8000 : 0) | ((m.opcode ?? 0) & 0x0f) << 11 | (m.aa ? 0x0400 : 0) | (m.tc ? 0x0200 : 0)
    | (m.rd ? 0x0100 : 0) | (m.ra ? 0x0080 : 0) | ((m.rcode ?? 0) & 0x0f);
  const qs = m.questions ?? [];
  const sections = [m.answers ?? [], m.authorities ?? [], m.additionals ?? []];
  header.writeUInt16BE(m.id & 0xffff, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(qs.length, 4);
  sections.forEach((s, i) => header.writeUInt16BE(s.length, 6 + i * 2));
  const body: Buffer[] = [header];
  for (const q of qs) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(typeCode(q.type), 0);
    tail.writeUInt16BE(q.class ?? 1, 2);
    body.push(encodeName(q.name), tail);
  }
  for (const s of sections) for (const rec of s) body.push(recordBytes(rec));
  return Buffer.concat(body);
}

export function buildDnsQuery(id: number, name: string, type = 'A'): Buffer {
  return buildDnsMessage({ id, rd: true, questions: [{ name, type }] });
}

/**
 * An error answer (SERVFAIL, REFUSED, FORMERR, ...) to a query, echoing its id, opcode, RD bit and
 * question section. A query too broken to echo its question gets a bare header (FORMERR style).
 * Returns undefined for input too short to carry an id: there is nobody to answer.
 */
export function buildDnsErrorResponse(query: Buffer, rcode: string | number): Buffer | undefined {
  if (query.length < 12) return undefined;
  const code = typeof rcode === 'number' ? rcode : rcodeCode(rcode);
  const id = query.readUInt16BE(0);
  const qflags = query.readUInt16BE(2);
  if (qflags & 0x8000) return undefined; // never answer a response
  // Echo the first question, re-encoded (uncompressed) from what was parsed.
  let question = Buffer.alloc(0);
  try {
    if (query.readUInt16BE(4) >= 1) {
      const q = readQuestion(new Reader(query, 12));
      const tail = Buffer.alloc(4);
      tail.writeUInt16BE(q.typeCode, 0);
      tail.writeUInt16BE(q.class, 2);
      question = Buffer.concat([encodeName(q.name), tail]);
    }
  } catch {
    question = Buffer.alloc(0);
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8000 | (qflags & 0x7800) | (qflags & 0x0100) | 0x0080 | (code & 0x0f), 2);
  header.writeUInt16BE(question.length ? 1 : 0, 4);
  return Buffer.concat([header, question]);
}
