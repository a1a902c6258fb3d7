/**
 * HPACK decoding against every example of RFC 7541 Appendix C (C.1 integers through C.6 responses
 * with Huffman coding), the dynamic table checked after each block as the RFC prints it; then the
 * errors a hostile encoder can cause, and a seeded fuzz of mutated blocks.
 */
import { HpackDecoder } from '../../../../proxy/capture/http2/hpack';
import { EOS, huffmanCodes, huffmanDecode, huffmanMaxDecodedLength } from '../../../../proxy/capture/http2/hpack-huffman';
import { prng } from '../../../../scripts/fixtures/random';

/** The RFC's hex dumps, spaces and line breaks as printed. */
function hex(dump: string): Buffer {
  return Buffer.from(dump.replace(/\s+/g, ''), 'hex');
}

type Table = [string, string][];

interface Step {
  block: string;
  headers: [string, string][];
  table: Table;
  size: number;
}

function runSequence(steps: Step[], decoder = new HpackDecoder()): void {
  for (const step of steps) {
    const r = decoder.decode(hex(step.block));
    if (!r.ok) throw new Error(r.error);
    expect(r.headers).toEqual(step.headers);
    expect(decoder.entries()).toEqual(step.table);
    expect(decoder.tableSize).toBe(step.size);
  }
}

describe('RFC 7541 C.1: integer representation (read through table size updates, 5-bit prefix)', () => {
  it('C.1.1: 10 in a 5-bit prefix', () => {
    const d = new HpackDecoder();
    expect(d.decode(Buffer.from([0x20 | 10]))).toMatchObject({ ok: true, headers: [] });
    expect(d.tableCapacity).toBe(10);
  });
  it('C.1.2: 1337 in a 5-bit prefix (31, 154, 10)', () => {
    const d = new HpackDecoder();
    expect(d.decode(Buffer.from([0x20 | 31, 0x9a, 0x0a])).ok).toBe(true);
    expect(d.tableCapacity).toBe(1337);
  });
});

describe('RFC 7541 C.2: header field representations', () => {
  it('C.2.1: literal with indexing', () => {
    runSequence([{ block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', headers: [['custom-key', 'custom-header']], table: [['custom-key', 'custom-header']], size: 55 }]);
  });
  it('C.2.2: literal without indexing', () => {
    runSequence([{ block: '040c 2f73 616d 706c 652f 7061 7468', headers: [[':path', '/sample/path']], table: [], size: 0 }]);
  });
  it('C.2.3: literal never indexed (reported as such)', () => {
    const d = new HpackDecoder();
    const r = d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'));
    expect(r).toEqual({ ok: true, headers: [['password', 'secret']], neverIndexed: [0], listBytes: 8 + 6 + 32, truncated: false });
    expect(d.entries()).toEqual([]);
  });
  it('C.2.4: indexed field', () => {
    runSequence([{ block: '82', headers: [[':method', 'GET']], table: [], size: 0 }]);
  });
});

const REQUEST_1: [string, string][] = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const REQUEST_2: [string, string][] = [...REQUEST_1, ['cache-control', 'no-cache']];
const REQUEST_3: [string, string][] = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];
const TABLE_1: Table = [[':authority', 'www.example.com']];
const TABLE_2: Table = [['cache-control', 'no-cache'], ...TABLE_1];
const TABLE_3: Table = [['custom-key', 'custom-value'], ...TABLE_2];

describe('RFC 7541 C.3 and C.4: requests on one connection', () => {
  it('C.3: without Huffman coding', () => {
    runSequence([
      { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', headers: REQUEST_1, table: TABLE_1, size: 57 },
      { block: '8286 84be 5808 6e6f 2d63 6163 6865', headers: REQUEST_2, table: TABLE_2, size: 110 },
      { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', headers: REQUEST_3, table: TABLE_3, size: 164 },
    ]);
  });
  it('C.4: with Huffman coding', () => {
    runSequence([
      { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', headers: REQUEST_1, table: TABLE_1, size: 57 },
      { block: '8286 84be 5886 a8eb 1064 9cbf', headers: REQUEST_2, table: TABLE_2, size: 110 },
      { block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', headers: REQUEST_3, table: TABLE_3, size: 164 },
    ]);
  });
});

const DATE_1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSES: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', DATE_1], ['location', LOCATION]],
  [[':status', '307'], ['cache-control', 'private'], ['date', DATE_1], ['location', LOCATION]],
  [[':status', '200'], ['cache-control', 'private'], ['date', DATE_2], ['location', LOCATION], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]],
];
const RESPONSE_TABLES: Table[] = [
  [['location', LOCATION], ['date', DATE_1], ['cache-control', 'private'], [':status', '302']],
  [[':status', '307'], ['location', LOCATION], ['date', DATE_1], ['cache-control', 'private']],
  [['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE_2]],
];

/** C.5 and C.6 run with SETTINGS_HEADER_TABLE_SIZE 256, so entries are evicted. */
function decoder256(): HpackDecoder {
  const d = new HpackDecoder();
  expect(d.setSettingsTableSize(256)).toBeNull();
  return d;
}

describe('RFC 7541 C.5 and C.6: responses with evictions (table size 256)', () => {
  it('C.5: without Huffman coding', () => {
    runSequence(
      [
        {
          block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768
            7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
          headers: RESPONSES[0], table: RESPONSE_TABLES[0], size: 222,
        },
        { block: '4803 3330 37c1 c0bf', headers: RESPONSES[1], table: RESPONSE_TABLES[1], size: 222 },
        {
          block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153
            444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
          headers: RESPONSES[2], table: RESPONSE_TABLES[2], size: 215,
        },
      ],
      decoder256(),
    );
  });
  it('C.6: with Huffman coding', () => {
    runSequence(
      [
        {
          block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
            e9ae 82ae 43d3`,
          headers: RESPONSES[0], table: RESPONSE_TABLES[0], size: 222,
        },
        { block: '4883 640e ffc1 c0bf', headers: RESPONSES[1], table: RESPONSE_TABLES[1], size: 222 },
        {
          block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
            3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
          headers: RESPONSES[2], table: RESPONSE_TABLES[2], size: 215,
        },
      ],
      decoder256(),
    );
  });
});

/** A Huffman encoder for the tests only (phonehome decodes; it never needs to encode). */
function huffmanEncode(bytes: Uint8Array): Buffer {
  const codes = huffmanCodes();
  const bits: number[] = [];
  for (const b of bytes) {
    const [code, length] = codes[b];
    for (let i = length - 1; i >= 0; i--) bits.push(Math.floor(code / 2 ** i) & 1);
  }
  while (bits.length % 8) bits.push(1);
  const out = Buffer.alloc(bits.length / 8);
  for (let i = 0; i < bits.length; i++) out[i >> 3] |= bits[i] << (7 - (i & 7));
  return out;
}

function decodeHuffman(encoded: Buffer): Buffer | null {
  const out = Buffer.alloc(huffmanMaxDecodedLength(encoded.length));
  const n = huffmanDecode(encoded, 0, encoded.length, out);
  return n < 0 ? null : out.subarray(0, n);
}

describe('Huffman code (RFC 7541 Appendix B)', () => {
  it('rebuilds the codes the RFC prints (spot checks across lengths) and is complete', () => {
    const codes = huffmanCodes();
    expect(codes[48]).toEqual([0x0, 5]); // '0'
    expect(codes[47]).toEqual([0x18, 6]); // '/'
    expect(codes[58]).toEqual([0x5c, 7]); // ':'
    expect(codes[38]).toEqual([0xf8, 8]); // '&'
    expect(codes[63]).toEqual([0x3fc, 10]); // '?'
    expect(codes[92]).toEqual([0x7fff0, 19]); // '\'
    expect(codes[0]).toEqual([0x1ff8, 13]);
    expect(codes[10]).toEqual([0x3ffffffc, 30]);
    expect(codes[212]).toEqual([0x7ffffe1, 27]);
    expect(codes[255]).toEqual([0x3ffffee, 26]);
    expect(codes[EOS]).toEqual([0x3fffffff, 30]);
    /* Kraft equality: a complete prefix code. */
    expect(codes.reduce((sum, [, length]) => sum + 2 ** -length, 0)).toBe(1);
  });

  it('decodes every byte value, and seeded random strings, back to what was encoded', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(decodeHuffman(huffmanEncode(all))).toEqual(Buffer.from(all));
    const rand = prng(7541);
    for (let i = 0; i < 300; i++) {
      const s = Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
      expect(decodeHuffman(huffmanEncode(s))).toEqual(s);
    }
  });

  it('refuses padding of 8 bits or more, padding that is not all ones, and an EOS symbol', () => {
    expect(decodeHuffman(Buffer.from([0xff]))).toBeNull(); // 8 bits of padding
    expect(decodeHuffman(Buffer.from([0x18]))).toBeNull(); // 'a' (00011) then 000
    expect(decodeHuffman(Buffer.from([0x1f]))).toEqual(Buffer.from('a')); // 'a' then 111: fine
    expect(decodeHuffman(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toBeNull(); // EOS inside
    expect(decodeHuffman(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
  });
});

describe('decoding errors and limits', () => {
  const bad = (block: number[] | Buffer, d = new HpackDecoder()) => {
    const r = d.decode(Buffer.from(block));
    expect(r.ok).toBe(false);
    return r.ok ? '' : r.error;
  };

  it('index 0, and indexes past both tables', () => {
    expect(bad([0x80])).toMatch(/index 0/);
    expect(bad([0xbe])).toMatch(/index 62 is not in/); // empty dynamic table
    expect(bad([0x7f, 0x00, 0x01, 0x61])).toMatch(/name index 63/);
  });

  it('integers that overflow or end early', () => {
    expect(bad([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])).toMatch(/exceeds/);
    expect(bad([0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])).toMatch(/exceeds/); // zero bytes forever
    expect(bad([0xff, 0x80])).toMatch(/ends inside an integer/);
  });

  it('strings that run past the block, and bad Huffman strings', () => {
    expect(bad([0x40, 0x05, 0x61])).toMatch(/runs past the end/);
    expect(bad([0x40, 0x81, 0x1f, 0x81, 0xff])).toMatch(/invalid Huffman/);
    expect(bad([0x40, 0x01, 0x61])).toMatch(/ends where a string was expected/);
  });

  it('table size updates: only at the start, never above the SETTINGS bound', () => {
    expect(bad([0x82, 0x20])).toMatch(/after a header field/);
    expect(bad([0x3f, 0xe2, 0x1f])).toMatch(/4096 bytes SETTINGS_HEADER_TABLE_SIZE allows/); // 4097
    const d = new HpackDecoder();
    expect(d.decode(Buffer.from([0x20, 0x3f, 0xe1, 0x1f])).ok).toBe(true); // two updates at the start: 0 then 4096
  });

  it('honours the receiver\'s SETTINGS_HEADER_TABLE_SIZE: announced, applied, and held to maxHeaderTableSize', () => {
    const d = new HpackDecoder({ maxTableSize: 65536 });
    const update = (n: number) => {
      const b: number[] = [0x3f];
      let rest = n - 31;
      while (rest >= 128) {
        b.push((rest & 0x7f) | 0x80);
        rest = Math.floor(rest / 128);
      }
      b.push(rest);
      return Buffer.from(b);
    };
    expect(d.decode(update(8192)).ok).toBe(false);
    const e = new HpackDecoder({ maxTableSize: 65536 });
    expect(e.announceSettingsTableSize(8192)).toBeNull();
    expect(e.decode(update(8192)).ok).toBe(true);
    expect(e.tableCapacity).toBe(8192);
    const f = new HpackDecoder({ maxTableSize: 65536 });
    expect(f.setSettingsTableSize(1 << 20)).toMatch(/maxHeaderTableSize/);
    expect(f.decode(update(1 << 20)).ok).toBe(false); // table size abuse: refused, not allocated
    const g = new HpackDecoder({ maxTableSize: 65536 });
    expect(g.setSettingsTableSize(65536)).toBeNull();
    expect(g.decode(update(65536)).ok).toBe(true);
  });

  it('a lowered setting, once acknowledged, shrinks the table', () => {
    const d = new HpackDecoder();
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    expect(d.tableSize).toBe(55);
    d.setSettingsTableSize(40);
    expect(d.tableSize).toBe(0);
    expect(d.tableCapacity).toBe(40);
  });

  it('refuses every block after a decoding error (the table can no longer be trusted)', () => {
    const d = new HpackDecoder();
    bad([0x80], d);
    expect(bad([0x82], d)).toMatch(/earlier header block/);
  });

  it('keeps only maxHeaderListBytes of a huge list, but keeps the table right', () => {
    const d = new HpackDecoder({ maxHeaderListBytes: 1000 });
    /* One 100-byte literal with indexing, then 200 references to it: 200 × 142 bytes decoded from 200 bytes. */
    const value = 'v'.repeat(100);
    const block = Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 100]), Buffer.from(value), Buffer.alloc(200, 0xbe)]);
    const r = d.decode(block);
    if (!r.ok) throw new Error(r.error);
    expect(r.truncated).toBe(true);
    expect(r.headers.length).toBe(7); // 7 × 133 ≤ 1000 < 8 × 133
    expect(r.listBytes).toBe(201 * 133);
    const next = d.decode(Buffer.from([0xbe]));
    expect(next).toMatchObject({ ok: true, headers: [['x', value]], truncated: false });
  });

  it('an entry larger than the table empties it (RFC 7541 §4.4)', () => {
    const d = new HpackDecoder();
    d.setSettingsTableSize(100);
    d.decode(Buffer.from([0x40, 0x01, 0x61, 0x01, 0x62]));
    expect(d.entries()).toEqual([['a', 'b']]);
    const big = Buffer.concat([Buffer.from([0x40, 0x01, 0x63, 0x45]), Buffer.alloc(0x45, 0x64)]);
    expect(d.decode(big).ok).toBe(true);
    expect(d.entries()).toEqual([]);
  });

  it('seeded fuzz: mutated RFC blocks and random bytes never throw, and stay bounded', () => {
    const seeds = [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ].map(hex);
    const rand = prng(20240917);
    let ok = 0;
    let failed = 0;
    for (let i = 0; i < 5000; i++) {
      const d = new HpackDecoder({ maxHeaderListBytes: 4096, maxTableSize: 8192 });
      const base = Buffer.from(seeds[i % seeds.length]);
      const block = i % 5 === 0 ? Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))) : base;
      for (let m = 0; m < 1 + Math.floor(rand() * 4); m++) block[Math.floor(rand() * block.length)] = Math.floor(rand() * 256);
      for (let round = 0; round < 3; round++) {
        const r = d.decode(block);
        if (r.ok) {
          ok++;
          expect(r.listBytes).toBeGreaterThanOrEqual(0);
          expect(r.headers.reduce((n, [a, b]) => n + a.length + b.length + 32, 0)).toBeLessThanOrEqual(4096);
        } else failed++;
        expect(d.tableSize).toBeLessThanOrEqual(8192);
      }
    }
    expect(ok).toBeGreaterThan(100);
    expect(failed).toBeGreaterThan(100);
  });
});
