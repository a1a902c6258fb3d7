/**
 * The frame reader: real frames from nghttp2 read the same in any chunking, and every malformed
 * frame RFC 9113 names becomes a recorded connection or stream error (never a throw), with the
 * limits on frame and header block size enforced by name. Malformed frames are written by hand
 * (h2-capture.ts `frame`): no real peer sends them.
 */
import { FrameReader, type FrameReaderOptions } from '../../../../proxy/capture/http2/frame-reader';
import { CLIENT_PREFACE, matchPreface, type Frame, type H2Error } from '../../../../proxy/capture/http2/frames';
import { prng } from '../../../../scripts/fixtures/random';
import { captureH2, frame, readBody, request, settingsPayload, u32 } from './h2-capture';

const DATA = 0, HEADERS = 1, PRIORITY = 2, RST = 3, SETTINGS = 4, PUSH = 5, PING = 6, GOAWAY = 7, WINDOW = 8, CONT = 9;
const END_STREAM = 1, END_HEADERS = 4, PADDED = 8, PRIO = 0x20, ACK = 1;

interface Read {
  frames: Frame[];
  streamErrors: H2Error[];
  error: H2Error | null;
  reader: FrameReader;
}

/** Reads `bytes` (cut into pieces of `step` bytes), copying DATA pieces and joining them per frame. */
function read(bytes: Buffer, opts: Partial<FrameReaderOptions> = {}, step = bytes.length || 1): Read {
  const out: Read = { frames: [], streamErrors: [], error: null, reader: null as unknown as FrameReader };
  out.reader = new FrameReader(
    {
      frame: (f) => {
        const last = out.frames[out.frames.length - 1];
        if (f.type === 'DATA' && !f.first && last?.type === 'DATA') {
          last.data = Buffer.concat([last.data, f.data]);
          last.last = f.last;
          last.endStream = f.endStream;
        } else out.frames.push(f.type === 'DATA' ? { ...f, data: Buffer.from(f.data) } : f.type === 'HEADERS' || f.type === 'PUSH_PROMISE' ? { ...f, block: Buffer.from(f.block) } : f);
      },
      streamError: (e) => out.streamErrors.push(e),
      connectionError: (e) => {
        if (out.error) throw new Error('two connection errors');
        out.error = e;
      },
    },
    { client: false, ...opts },
  );
  for (let o = 0; o < bytes.length; o += step) out.reader.push(bytes, 0, o, Math.min(bytes.length, o + step));
  return out;
}

const SETTINGS_EMPTY = frame(SETTINGS, 0, 0);
const withSettings = (...frames: Buffer[]) => Buffer.concat([SETTINGS_EMPTY, ...frames]);

describe('the client preface', () => {
  it('matchPreface tells sniffers yes, partial or no', () => {
    expect(matchPreface(CLIENT_PREFACE)).toBe('yes');
    expect(matchPreface(Buffer.concat([CLIENT_PREFACE, Buffer.from('more')]))).toBe('yes');
    expect(matchPreface(Buffer.from('PRI * HTT'))).toBe('partial');
    expect(matchPreface(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('no');
    expect(matchPreface(Buffer.alloc(0))).toBe('partial');
  });

  it('is required on the client side, then a SETTINGS frame first', () => {
    expect(read(Buffer.concat([CLIENT_PREFACE, SETTINGS_EMPTY]), { client: true }, 5).error).toBeNull();
    expect(read(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), { client: true }).error).toMatchObject({ codeName: 'PROTOCOL_ERROR', message: expect.stringMatching(/preface is missing/) });
    expect(read(Buffer.concat([CLIENT_PREFACE, frame(PING, 0, 0, Buffer.alloc(8))]), { client: true }).error?.message).toMatch(/first frame is PING, not SETTINGS/);
    expect(read(frame(PING, 0, 0, Buffer.alloc(8)), { expectPreface: false }).error).toBeNull();
  });
});

describe('frames nghttp2 writes', () => {
  it('read the same whole, byte by byte and in random pieces; every byte is accounted for', async () => {
    const { chunks } = await captureH2({
      onStream: (stream) => {
        void readBody(stream).then((b) => {
          stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'x-done': 'yes' }));
          stream.end(b.toString().toUpperCase().repeat(500));
        });
      },
      run: (client) => Promise.all([1, 2, 3].map((i) => request(client, { ':method': 'POST', ':path': `/r${i}` }, `body number ${i}`))),
    });
    for (const from of ['client', 'server'] as const) {
      const bytes = Buffer.concat(chunks.filter((c) => c.from === from).map((c) => c.bytes));
      const whole = read(bytes, { client: from === 'client' });
      expect(whole.error).toBeNull();
      expect(whole.reader.atBoundary).toBe(true);
      expect(whole.reader.bytesRead).toBe(bytes.length);
      expect(whole.frames[0]).toMatchObject({ type: 'SETTINGS', ack: false });
      const types = new Set(whole.frames.map((f) => f.type));
      expect(types).toEqual(new Set(from === 'client' ? ['SETTINGS', 'HEADERS', 'DATA', 'GOAWAY'] : ['SETTINGS', 'HEADERS', 'DATA']));
      expect(read(bytes, { client: from === 'client' }, 1).frames).toEqual(whole.frames);
      const rand = prng(from.length);
      const pieces: Read = read(Buffer.alloc(0), { client: from === 'client' });
      for (let o = 0; o < bytes.length; ) {
        const n = 1 + Math.floor(rand() * 700);
        pieces.reader.push(bytes, 0, o, Math.min(bytes.length, o + n));
        o += n;
      }
      expect(pieces.frames).toEqual(whole.frames);
    }
  });
});

describe('every frame type', () => {
  it('DATA: padding removed, END_STREAM on the last piece, empty frames kept', () => {
    const padded = frame(DATA, PADDED | END_STREAM, 1, [3, ...Buffer.from('abc'), 0, 0, 0]);
    const r = read(withSettings(padded, frame(DATA, END_STREAM, 3)), {}, 2);
    expect(r.error).toBeNull();
    expect(r.frames.slice(1)).toEqual([
      { type: 'DATA', streamId: 1, data: Buffer.from('abc'), first: true, last: true, endStream: true, frameLength: 7 },
      { type: 'DATA', streamId: 3, data: Buffer.alloc(0), first: true, last: true, endStream: true, frameLength: 0 },
    ]);
    /* All padding, no data. */
    expect(read(withSettings(frame(DATA, PADDED, 1, [2, 0, 0]))).frames[1]).toMatchObject({ data: Buffer.alloc(0), last: true });
  });

  it('HEADERS with padding and priority; PUSH_PROMISE; CONTINUATION joined', () => {
    const block = Buffer.from([0x82, 0x86, 0x84]);
    const h = frame(HEADERS, PADDED | PRIO | END_HEADERS | END_STREAM, 1, [2, 0x80, 0, 0, 0, 255, ...block, 0, 0]);
    const split = Buffer.concat([frame(HEADERS, 0, 3, block.subarray(0, 1)), frame(CONT, 0, 3, []), frame(CONT, END_HEADERS, 3, block.subarray(1))]);
    const push = frame(PUSH, END_HEADERS | PADDED, 1, [1, ...u32(2), ...block, 0]);
    const r = read(withSettings(h, split, push), {}, 3);
    expect(r.error).toBeNull();
    expect(r.frames.slice(1)).toEqual([
      { type: 'HEADERS', streamId: 1, endStream: true, priority: { exclusive: true, dependsOn: 0, weight: 256 }, block, padLength: 2, continuations: 0 },
      { type: 'HEADERS', streamId: 3, endStream: false, priority: undefined, block, padLength: 0, continuations: 2 },
      { type: 'PUSH_PROMISE', streamId: 1, promisedStreamId: 2, block, padLength: 1, continuations: 0 },
    ]);
  });

  it('PRIORITY, RST_STREAM, SETTINGS (and ACK), PING, GOAWAY, WINDOW_UPDATE; unknown types skipped', () => {
    const r = read(
      Buffer.concat([
        frame(SETTINGS, 0, 0, settingsPayload([[1, 65536], [5, 32768], [0x99, 7]])),
        frame(SETTINGS, ACK, 0),
        frame(PRIORITY, 0, 3, [0, 0, 0, 1, 15]),
        frame(RST, 0, 3, u32(8)),
        frame(PING, ACK, 0, Buffer.from('12345678')),
        frame(0xfa, 0xff, 5, Buffer.alloc(300, 1)),
        frame(WINDOW, 0, 0, u32(65535)),
        frame(GOAWAY, 0, 0, [...u32(7), ...u32(11), ...Buffer.from('calm down')]),
      ]),
      { client: false },
      4,
    );
    expect(r.error).toBeNull();
    expect(r.frames.map((f) => f.type)).toEqual(['SETTINGS', 'SETTINGS', 'PRIORITY', 'RST_STREAM', 'PING', 'UNKNOWN', 'WINDOW_UPDATE', 'GOAWAY']);
    expect(r.frames[0]).toEqual({ type: 'SETTINGS', streamId: 0, ack: false, settings: [[1, 65536], [5, 32768], [0x99, 7]] });
    expect(r.frames[1]).toMatchObject({ ack: true, settings: [] });
    expect(r.frames[2]).toEqual({ type: 'PRIORITY', streamId: 3, priority: { exclusive: false, dependsOn: 1, weight: 16 } });
    expect(r.frames[3]).toEqual({ type: 'RST_STREAM', streamId: 3, errorCode: 8 });
    expect(r.frames[5]).toEqual({ type: 'UNKNOWN', streamId: 5, frameType: 0xfa, flags: 0xff, length: 300 });
    expect(r.frames[6]).toEqual({ type: 'WINDOW_UPDATE', streamId: 0, increment: 65535 });
    expect(r.frames[7]).toMatchObject({ lastStreamId: 7, errorCode: 11, debugData: Buffer.from('calm down'), debugDataSize: 9 });
  });

  it('GOAWAY debug data is kept up to maxGoawayDebugBytes, the rest skipped, its size reported', () => {
    const r = read(withSettings(frame(GOAWAY, 0, 0, [...u32(1), ...u32(0), ...Buffer.alloc(5000, 0x41)]), frame(PING, 0, 0, Buffer.alloc(8))), { limits: { maxGoawayDebugBytes: 16 } }, 100);
    expect(r.frames[1]).toMatchObject({ type: 'GOAWAY', debugData: Buffer.alloc(16, 0x41), debugDataSize: 5000 });
    expect(r.frames[2].type).toBe('PING');
  });
});

describe('malformed frames are errors as data', () => {
  const conn = (bytes: Buffer, opts: Partial<FrameReaderOptions> = {}) => {
    const r = read(bytes, opts);
    expect(r.error).not.toBeNull();
    return `${r.error!.codeName}: ${r.error!.message}`;
  };

  it.each([
    ['DATA on stream 0', frame(DATA, 0, 0, [1]), /PROTOCOL_ERROR: DATA frame on stream 0/],
    ['DATA padding as long as the payload', frame(DATA, PADDED, 1, [3, 0, 0]), /PROTOCOL_ERROR: .*3 bytes of padding in a 3-byte payload/],
    ['padded DATA without a pad length', frame(DATA, PADDED, 1), /PROTOCOL_ERROR/],
    ['HEADERS padding past its fields', frame(HEADERS, PADDED | END_HEADERS, 1, [9, 0x82]), /PROTOCOL_ERROR: .*padding leave no room/],
    ['HEADERS on stream 0', frame(HEADERS, END_HEADERS, 0, [0x82]), /PROTOCOL_ERROR: HEADERS frame on stream 0/],
    ['CONTINUATION out of nowhere', frame(CONT, END_HEADERS, 1, [0x82]), /PROTOCOL_ERROR: CONTINUATION .* without a header block/],
    ['another frame inside a header block', Buffer.concat([frame(HEADERS, 0, 1, [0x82]), frame(PING, 0, 0, Buffer.alloc(8))]), /PROTOCOL_ERROR: PING frame on stream 0 in the middle of the header block of stream 1/],
    ['CONTINUATION for another stream', Buffer.concat([frame(HEADERS, 0, 1, [0x82]), frame(CONT, END_HEADERS, 3, [0x84])]), /in the middle of the header block of stream 1/],
    ['RST_STREAM of 3 bytes', frame(RST, 0, 1, [0, 0, 8]), /FRAME_SIZE_ERROR: RST_STREAM frame of 3 bytes/],
    ['RST_STREAM on stream 0', frame(RST, 0, 0, u32(8)), /PROTOCOL_ERROR/],
    ['SETTINGS of 7 bytes', frame(SETTINGS, 0, 0, Buffer.alloc(7)), /FRAME_SIZE_ERROR: SETTINGS frame of 7 bytes/],
    ['SETTINGS ACK with a payload', frame(SETTINGS, ACK, 0, Buffer.alloc(6)), /FRAME_SIZE_ERROR: SETTINGS acknowledgement/],
    ['SETTINGS on a stream', frame(SETTINGS, 0, 1), /PROTOCOL_ERROR: SETTINGS frame on stream 1/],
    ['SETTINGS_ENABLE_PUSH of 2', frame(SETTINGS, 0, 0, settingsPayload([[2, 2]])), /PROTOCOL_ERROR: SETTINGS_ENABLE_PUSH of 2/],
    ['SETTINGS_ENABLE_PUSH of 1 from a server', frame(SETTINGS, 0, 0, settingsPayload([[2, 1]])), /sent by a server/],
    ['SETTINGS_MAX_FRAME_SIZE too small', frame(SETTINGS, 0, 0, settingsPayload([[5, 100]])), /PROTOCOL_ERROR: SETTINGS_MAX_FRAME_SIZE of 100/],
    ['SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', frame(SETTINGS, 0, 0, settingsPayload([[4, 2 ** 31]])), /FLOW_CONTROL_ERROR/],
    ['PING of 7 bytes', frame(PING, 0, 0, Buffer.alloc(7)), /FRAME_SIZE_ERROR: PING frame of 7 bytes/],
    ['PING on a stream', frame(PING, 0, 1, Buffer.alloc(8)), /PROTOCOL_ERROR/],
    ['GOAWAY of 4 bytes', frame(GOAWAY, 0, 0, u32(1)), /FRAME_SIZE_ERROR: GOAWAY frame of 4 bytes/],
    ['WINDOW_UPDATE of 0 on the connection', frame(WINDOW, 0, 0, u32(0)), /PROTOCOL_ERROR: WINDOW_UPDATE of 0 on the connection/],
    ['WINDOW_UPDATE of 5 bytes', frame(WINDOW, 0, 1, Buffer.alloc(5)), /FRAME_SIZE_ERROR/],
    ['PUSH_PROMISE too short', frame(PUSH, END_HEADERS, 1, [0, 0]), /FRAME_SIZE_ERROR: PUSH_PROMISE frame too short/],
  ])('%s', (_name, bad, expected) => {
    expect(conn(withSettings(bad, frame(PING, 0, 0, Buffer.alloc(8))))).toMatch(expected);
  });

  it('PUSH_PROMISE from a client is a connection error', () => {
    expect(conn(Buffer.concat([CLIENT_PREFACE, SETTINGS_EMPTY, frame(PUSH, END_HEADERS, 1, [...u32(2), 0x82])]), { client: true })).toMatch(/PUSH_PROMISE frame sent by a client/);
  });

  it('stream errors are reported and reading goes on: PRIORITY of the wrong size or on itself, WINDOW_UPDATE of 0', () => {
    const r = read(withSettings(frame(PRIORITY, 0, 3, [0, 0, 0]), frame(PRIORITY, 0, 5, [0, 0, 0, 5, 1]), frame(WINDOW, 0, 7, u32(0)), frame(PING, 0, 0, Buffer.alloc(8))));
    expect(r.error).toBeNull();
    expect(r.streamErrors.map((e) => [e.scope, e.streamId, e.codeName])).toEqual([['stream', 3, 'FRAME_SIZE_ERROR'], ['stream', 5, 'PROTOCOL_ERROR'], ['stream', 7, 'PROTOCOL_ERROR']]);
    expect(r.frames.map((f) => f.type)).toEqual(['SETTINGS', 'PING']);
  });

  it('stops for good after a connection error (later bytes are not read)', () => {
    const r = read(withSettings(frame(DATA, 0, 0, [1]), frame(PING, 0, 0, Buffer.alloc(8))), {}, 1);
    expect(r.frames.map((f) => f.type)).toEqual(['SETTINGS']);
    expect(r.reader.stopped).toBe(true);
  });
});

describe('limits', () => {
  it('frame size: 16,384 until the receiver\'s SETTINGS_MAX_FRAME_SIZE says more; maxFrameSize caps it', () => {
    const big = frame(DATA, 0, 1, Buffer.alloc(20000));
    expect(read(withSettings(big)).error).toMatchObject({ codeName: 'FRAME_SIZE_ERROR', message: expect.stringMatching(/20000 bytes .* larger than the 16384 bytes accepted/) });
    const r = read(Buffer.alloc(0));
    r.reader.setAcceptedFrameSize(32768);
    r.reader.push(withSettings(big), 0);
    expect(r.error).toBeNull();
    expect(r.frames[1]).toMatchObject({ type: 'DATA', data: Buffer.alloc(20000), last: true });
    const capped = read(Buffer.alloc(0), { limits: { maxFrameSize: 18000 } });
    capped.reader.setAcceptedFrameSize(32768);
    capped.reader.push(withSettings(big), 0);
    expect(capped.error).toMatchObject({ codeName: 'FRAME_SIZE_ERROR', limit: 'maxFrameSize' });
  });

  it('header block size: maxHeaderBlockBytes over HEADERS and its CONTINUATIONs (a CONTINUATION flood)', () => {
    const flood = [frame(HEADERS, 0, 1, Buffer.alloc(1000, 0x82))];
    for (let i = 0; i < 100; i++) flood.push(frame(CONT, 0, 1, Buffer.alloc(1000, 0x82)));
    const r = read(withSettings(...flood), { limits: { maxHeaderBlockBytes: 50_000 } }, 1009);
    expect(r.error).toMatchObject({ codeName: 'ENHANCE_YOUR_CALM', limit: 'maxHeaderBlockBytes', message: expect.stringMatching(/larger than 50000 bytes/) });
    /* It stopped at the frame that went past the limit: the rest was never read. */
    expect(r.reader.bytesRead).toBeLessThanOrEqual(51 * 1009 + 9);
    expect(r.reader.stopped).toBe(true);
    /* Empty CONTINUATIONs cost nothing to hold. */
    const empty = [frame(HEADERS, 0, 1, [0x82])];
    for (let i = 0; i < 10000; i++) empty.push(frame(CONT, 0, 1));
    empty.push(frame(CONT, END_HEADERS, 1, [0x84]));
    const e = read(withSettings(...empty));
    expect(e.error).toBeNull();
    expect(e.frames[1]).toMatchObject({ type: 'HEADERS', block: Buffer.from([0x82, 0x84]), continuations: 10001 });
  });

  it('control frames: maxControlFrameBytes bounds a SETTINGS frame', () => {
    const r = read(Buffer.alloc(0), { limits: { maxControlFrameBytes: 60 } });
    r.reader.setAcceptedFrameSize(1 << 20);
    r.reader.push(frame(SETTINGS, 0, 0, Buffer.alloc(600)), 0);
    expect(r.error).toMatchObject({ limit: 'maxControlFrameBytes' });
  });

  it('seeded fuzz: random and mutated frame streams never throw; a stopped reader holds nothing', () => {
    const base = withSettings(
      frame(HEADERS, END_HEADERS | PADDED, 1, [1, 0x82, 0x86, 0]),
      frame(DATA, PADDED | END_STREAM, 1, [2, 1, 2, 3, 0, 0]),
      frame(GOAWAY, 0, 0, [...u32(1), ...u32(0), 1, 2]),
      frame(CONT, END_HEADERS, 1, [0x82]),
    );
    const rand = prng(4242);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const b = i % 3 === 0 ? Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))) : Buffer.from(base);
      for (let m = 0; m < 1 + Math.floor(rand() * 5); m++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      const r = read(b, { expectPreface: rand() < 0.5, client: rand() < 0.3 }, 1 + Math.floor(rand() * 20));
      if (r.error) {
        errors++;
        expect(r.reader.stopped).toBe(true);
      }
    }
    expect(errors).toBeGreaterThan(1000);
  });
});
