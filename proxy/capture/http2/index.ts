/**
 * HTTP/2 read from bytes, for every capture path that sees HTTP/2 without terminating it itself
 * (pcap import, decrypted TLS, h2c with prior knowledge in VPN mode). Layers, each usable alone:
 *   frames.ts             preface (`matchPreface` for sniffers), codes, frame types, H2Limits
 *   frame-reader.ts       FrameReader: one direction's bytes → frames, errors as data
 *   hpack.ts              HpackDecoder: header blocks → header lists (RFC 7541)
 *   passive-connection.ts H2PassiveConnection: both directions → one H2Exchange per stream
 *   exchange.ts           the H2Exchange shape (a live integration can fill it too)
 *   flow-adapter.ts       exchangeToFlow: an exchange plus connection facts → Flow
 * gRPC bodies are unframed by analysis (proxy/analyse/decode/decoders/grpc.ts), not here.
 */
export { CLIENT_PREFACE, matchPreface, DEFAULT_H2_LIMITS, ErrorCode, errorCodeName, resolveH2Limits } from './frames';
export type { Frame, H2Error, H2Limits } from './frames';
export { FrameReader } from './frame-reader';
export type { FrameSink, FrameReaderOptions } from './frame-reader';
export { HpackDecoder } from './hpack';
export type { HpackResult } from './hpack';
export { H2PassiveConnection } from './passive-connection';
export type { H2ConnectionOptions, H2Goaway, H2Side } from './passive-connection';
export { newExchange } from './exchange';
export type { H2Exchange, H2Reset, H2StreamTimings } from './exchange';
export { exchangeToFlow } from './flow-adapter';
export type { H2ConnectionFacts } from './flow-adapter';
