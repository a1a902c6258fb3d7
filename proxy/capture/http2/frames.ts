/**
 * HTTP/2 on the wire (RFC 9113): the connection preface, frame type, flag, error and setting codes,
 * the frames the reader (frame-reader.ts) hands out, the errors it records, and the named limits
 * that keep a hostile peer from making a reader hold more than a few bounded buffers.
 *
 * Sniffers (pcap import, VPN mode) recognise HTTP/2 with prior knowledge (h2c on any port) with
 * `matchPreface(bytes)`: the client's first 24 bytes are always `CLIENT_PREFACE`.
 */

/** What every HTTP/2 client sends first (RFC 9113 §3.4), before its first SETTINGS frame. */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Whether buf[start, end) begins with the client preface: 'yes' (all 24 bytes there), 'partial'
 * (fewer bytes, all matching so far: wait for more), 'no' (not HTTP/2 with prior knowledge).
 */
export function matchPreface(buf: Uint8Array, start = 0, end = buf.length): 'yes' | 'partial' | 'no' {
  const n = Math.min(end - start, CLIENT_PREFACE.length);
  for (let i = 0; i < n; i++) if (buf[start + i] !== CLIENT_PREFACE[i]) return 'no';
  return n === CLIENT_PREFACE.length ? 'yes' : 'partial';
}

export const FRAME_HEADER_BYTES = 9;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** RFC 9113 §7. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const ERROR_NAMES: string[] = [];
for (const [name, code] of Object.entries(ErrorCode)) ERROR_NAMES[code] = name;

/** 'CANCEL' for 8; codes the RFC does not define read as 'unknown error code 0x…' (they mean INTERNAL_ERROR). */
export function errorCodeName(code: number): string {
  return ERROR_NAMES[code] ?? `unknown error code 0x${code.toString(16)}`;
}

/** RFC 9113 §6.5.2, RFC 8441 (extended CONNECT), RFC 9218 (priorities). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
} as const;

/** Initial values before any SETTINGS frame (RFC 9113 §6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
export const MAX_ALLOWED_FRAME_SIZE = 2 ** 24 - 1;
export const DEFAULT_HEADER_TABLE_SIZE = 4096;

/**
 * Named bounds on what one connection may make a reader hold. Exceeding one is recorded as an error
 * (with `limit` naming it), never a crash; DATA payloads are streamed through, never held whole.
 */
export interface H2Limits {
  /**
   * Largest frame payload accepted, whatever a peer's SETTINGS_MAX_FRAME_SIZE allows (the reader
   * otherwise enforces the receiver's advertised size, 16,384 until its SETTINGS say more).
   */
  maxFrameSize: number;
  /** Largest header block (HEADERS or PUSH_PROMISE plus its CONTINUATIONs), compressed bytes. */
  maxHeaderBlockBytes: number;
  /** Largest decoded header list kept per block (RFC 9113 §6.5.2 measure: name + value + 32 per field). */
  maxHeaderListBytes: number;
  /** Largest HPACK dynamic table a peer may make us keep (its SETTINGS_HEADER_TABLE_SIZE is honoured up to this). */
  maxHeaderTableSize: number;
  /** Largest SETTINGS, PING, PRIORITY, RST_STREAM or WINDOW_UPDATE payload held (legitimate ones are tiny). */
  maxControlFrameBytes: number;
  /** GOAWAY debug data kept (the rest is skipped, its size still reported). */
  maxGoawayDebugBytes: number;
  /** Streams followed at once on one connection; beyond it the oldest is recorded unfinished. */
  maxOpenStreams: number;
  /** Header and body bytes held for the open streams of one connection; beyond it the oldest is recorded unfinished. */
  maxHeldBytes: number;
}

export const DEFAULT_H2_LIMITS: Readonly<H2Limits> = Object.freeze({
  maxFrameSize: MAX_ALLOWED_FRAME_SIZE,
  maxHeaderBlockBytes: 256 * 1024,
  maxHeaderListBytes: 256 * 1024,
  maxHeaderTableSize: 256 * 1024,
  maxControlFrameBytes: 16 * 1024,
  maxGoawayDebugBytes: 1024,
  maxOpenStreams: 1000,
  maxHeldBytes: 64 * 1024 * 1024,
});

/** The defaults with whatever valid (finite, ≥ 0) values `partial` sets. */
export function resolveH2Limits(partial?: Partial<H2Limits>): H2Limits {
  const out = { ...DEFAULT_H2_LIMITS };
  if (partial) {
    for (const key of Object.keys(out) as (keyof H2Limits)[]) {
      const v = partial[key];
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0) out[key] = Math.floor(v);
    }
  }
  return out;
}

/**
 * A protocol error, recorded as data. 'connection' errors end the reading of the connection (a
 * real peer would send GOAWAY); 'stream' errors concern one stream (a real peer would reset it).
 */
export interface H2Error {
  scope: 'connection' | 'stream';
  /** 0 for connection errors. */
  streamId: number;
  /** The RFC 9113 error code a strict receiver would send. */
  code: number;
  codeName: string;
  message: string;
  /** Set when one of our H2Limits, not the protocol, was the reason. */
  limit?: keyof H2Limits;
}

export function h2Error(scope: H2Error['scope'], streamId: number, code: number, message: string, limit?: keyof H2Limits): H2Error {
  const e: H2Error = { scope, streamId, code, codeName: errorCodeName(code), message };
  if (limit) e.limit = limit;
  return e;
}

export interface Priority {
  exclusive: boolean;
  dependsOn: number;
  /** 1 to 256. */
  weight: number;
}

/**
 * A piece of a DATA frame's payload (padding removed). A large frame may come in several pieces,
 * as the bytes arrive; `last` marks the frame's final piece, and `endStream` is only ever set on it.
 */
export interface DataFrame {
  type: 'DATA';
  streamId: number;
  data: Buffer;
  first: boolean;
  last: boolean;
  endStream: boolean;
  /** The whole frame's payload length, padding included (what flow control counts). */
  frameLength: number;
}

/** HEADERS with its CONTINUATION frames joined: `block` is the whole HPACK header block. */
export interface HeadersFrame {
  type: 'HEADERS';
  streamId: number;
  endStream: boolean;
  priority: Priority | undefined;
  block: Buffer;
  padLength: number;
  continuations: number;
}

export interface PushPromiseFrame {
  type: 'PUSH_PROMISE';
  streamId: number;
  promisedStreamId: number;
  block: Buffer;
  padLength: number;
  continuations: number;
}

export interface PriorityFrame {
  type: 'PRIORITY';
  streamId: number;
  priority: Priority;
}

export interface RstStreamFrame {
  type: 'RST_STREAM';
  streamId: number;
  errorCode: number;
}

export interface SettingsFrame {
  type: 'SETTINGS';
  streamId: 0;
  ack: boolean;
  /** [identifier, value] in the order sent. */
  settings: [id: number, value: number][];
}

export interface PingFrame {
  type: 'PING';
  streamId: 0;
  ack: boolean;
  opaque: Buffer;
}

export interface GoawayFrame {
  type: 'GOAWAY';
  streamId: 0;
  lastStreamId: number;
  errorCode: number;
  /** At most maxGoawayDebugBytes of it. */
  debugData: Buffer;
  debugDataSize: number;
}

export interface WindowUpdateFrame {
  type: 'WINDOW_UPDATE';
  streamId: number;
  increment: number;
}

/** A frame type this reader does not know (extensions): skipped, as RFC 9113 §4.1 requires. */
export interface UnknownFrame {
  type: 'UNKNOWN';
  streamId: number;
  frameType: number;
  flags: number;
  length: number;
}

export type Frame =
  | DataFrame
  | HeadersFrame
  | PushPromiseFrame
  | PriorityFrame
  | RstStreamFrame
  | SettingsFrame
  | PingFrame
  | GoawayFrame
  | WindowUpdateFrame
  | UnknownFrame;
