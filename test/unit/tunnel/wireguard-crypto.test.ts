/**
 * WireGuard's primitives against values computed elsewhere: keys from wireguard-tools (`wg genkey`,
 * `wg pubkey`), RFC 7748's X25519 vector, the protocol constants as published in boringtun, and
 * BLAKE2s / HMAC / HKDF / ChaCha20-Poly1305 outputs computed with Python's hashlib, hmac and
 * pyca/cryptography (the Python one-liners are in the comments).
 */
import { execFileSync } from 'child_process';
import {
  aeadOpen, aeadSeal, decodeKey, dh, hash, hmac, INITIAL_CHAIN_KEY, INITIAL_HASH, kdf, mac, privateKeyFromRaw, tai64n,
} from '../../../proxy/capture/tunnel/wireguard/crypto';
import { ReplayWindow, WINDOW_SIZE } from '../../../proxy/capture/tunnel/wireguard/replay';

const hex = (s: string) => Buffer.from(s, 'hex');
const KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i)); // bytes(range(32))

describe('WireGuard crypto', () => {
  test('public keys match `wg pubkey` for keys from `wg genkey`', () => {
    for (let i = 0; i < 4; i++) {
      const priv = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
      const pub = execFileSync('wg', ['pubkey'], { input: priv + '\n', encoding: 'utf8' }).trim();
      expect(privateKeyFromRaw(decodeKey(priv)).publicKey.toString('base64')).toBe(pub);
    }
  });

  test('X25519: RFC 7748 section 6.1', () => {
    const alice = privateKeyFromRaw(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    expect(alice.publicKey.toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    const shared = dh(alice.privateKey, hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'));
    expect(shared!.toString('hex')).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  });

  test('X25519 refuses low-order points (all-zero shared secret) instead of throwing', () => {
    const k = privateKeyFromRaw(KEY);
    expect(dh(k.privateKey, Buffer.alloc(32))).toBeNull();
    expect(dh(k.privateKey, Buffer.alloc(5))).toBeNull();
  });

  test('initial chaining key and hash are the protocol constants', () => {
    // boringtun src/noise/handshake.rs INITIAL_CHAIN_KEY / INITIAL_CHAIN_HASH
    expect([...INITIAL_CHAIN_KEY]).toEqual([
      96, 226, 109, 174, 243, 39, 239, 192, 46, 195, 53, 226, 160, 37, 210, 208, 22, 235, 66, 6, 248, 114, 119, 245, 45, 56, 209,
      152, 139, 120, 205, 54,
    ]);
    expect([...INITIAL_HASH]).toEqual([
      34, 17, 179, 97, 8, 26, 197, 102, 105, 18, 67, 219, 69, 138, 213, 50, 45, 156, 108, 102, 34, 147, 232, 183, 14, 225, 156,
      101, 186, 7, 158, 243,
    ]);
  });

  test('BLAKE2s hash, HMAC and the KDF chain match Python', () => {
    // hashlib.blake2s(b'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s').hexdigest()
    expect(hash(Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s')).toString('hex')).toBe('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    // hmac.new(bytes(range(32)), b'ikm', 'blake2s').hexdigest()
    expect(hmac(KEY, Buffer.from('ikm')).toString('hex')).toBe('d86b3c4552ebffc453304fb13b553930e3aa92d5b1b29c4b6bef7bf0a13709a4');
    // t0 = H(key, b'ikm'); t1 = H(t0, b'\x01'); t2 = H(t0, t1 + b'\x02'); t3 = H(t0, t2 + b'\x03')
    const [t1, t2, t3] = kdf(3, KEY, Buffer.from('ikm'));
    expect(t1.toString('hex')).toBe('79f4746530ca8c44c046d13f6148ecb897e1b5fcc2e89485294a40c1a93538cd');
    expect(t2.toString('hex')).toBe('09d7aa7e282ab0e5538238a28e2c3067d9207d9f01f6ca814da9171292020b3e');
    expect(t3.toString('hex')).toBe('b0a442f87e822c2d5e2627766318c8e0a2b98636bcd81154aef82dadc821d3b0');
    expect(kdf(1, KEY, Buffer.from('ikm'))[0]).toEqual(t1);
  });

  test('mac1 is keyed BLAKE2s with a 16-byte output (not a truncated 32-byte digest)', () => {
    // hashlib.blake2s(b'WireGuard mac1 test', digest_size=16, key=bytes(range(32))).hexdigest()
    const m = mac(KEY, Buffer.from('WireGuard mac1 test'));
    expect(m.toString('hex')).toBe('ff9b8b06ed3ff3819f790b60ef4f1c1d');
  });

  test('ChaCha20-Poly1305 with the WireGuard nonce (4 zero bytes + little-endian counter) matches pyca', () => {
    // ChaCha20Poly1305(bytes(range(32))).encrypt(bytes(4) + (0x0102030405060708).to_bytes(8, 'little'), b'hello wireguard', b'aad')
    const sealed = aeadSeal(KEY, 0x0102030405060708n, Buffer.from('hello wireguard'), Buffer.from('aad'));
    expect(sealed.toString('hex')).toBe('982cc188c4199d7116ce4db9120a05f535fd9fd7934dcb0b99a1bcef922ae2');
    expect(aeadOpen(KEY, 0x0102030405060708n, sealed, Buffer.from('aad'))!.toString()).toBe('hello wireguard');
    // An empty plaintext (keepalive, the response's "empty" field) is just the tag.
    expect(aeadSeal(KEY, 0n, Buffer.alloc(0), hash(Buffer.from('x'))).toString('hex')).toBe('a52a711a78be9841b204bc16a40e589d');
  });

  test('AEAD open refuses tampering, a wrong counter or AAD, and short input, without throwing', () => {
    const sealed = aeadSeal(KEY, 7n, Buffer.from('payload'), Buffer.alloc(0));
    const flipped = Buffer.from(sealed);
    flipped[0] ^= 1;
    expect(aeadOpen(KEY, 7n, flipped, Buffer.alloc(0))).toBeNull();
    expect(aeadOpen(KEY, 8n, sealed, Buffer.alloc(0))).toBeNull();
    expect(aeadOpen(KEY, 7n, sealed, Buffer.from('x'))).toBeNull();
    expect(aeadOpen(KEY, 7n, sealed.subarray(0, 10), Buffer.alloc(0))).toBeNull();
  });

  test('TAI64N: TAI64 label 2^62 + 10 + unix seconds, then nanoseconds, big-endian', () => {
    const t = tai64n(1_700_000_000_123);
    expect(t.readBigUInt64BE(0)).toBe(0x400000000000000an + 1_700_000_000n);
    expect(t.readUInt32BE(8)).toBe(123_000_000);
    expect(tai64n(1_700_000_001_000).compare(t)).toBe(1); // byte order is time order
  });

  test('decodeKey refuses anything but 32 bytes of canonical base64', () => {
    expect(() => decodeKey('abc')).toThrow();
    expect(() => decodeKey(Buffer.alloc(31).toString('base64'))).toThrow();
    expect(decodeKey(KEY.toString('base64'))).toEqual(KEY);
  });
});

describe('anti-replay window (RFC 6479)', () => {
  test('accepts each counter once, in any order inside the window', () => {
    const w = new ReplayWindow();
    for (const c of [0n, 2n, 1n, 5n, 3n]) expect(w.update(c)).toBe(true);
    for (const c of [0n, 1n, 2n, 3n, 5n]) expect(w.check(c)).toBe(false);
    expect(w.check(4n)).toBe(true);
  });

  test('refuses counters older than the window and keeps working after large jumps', () => {
    const w = new ReplayWindow();
    w.update(10n);
    w.update(10n + WINDOW_SIZE + 5n);
    expect(w.check(10n)).toBe(false); // fell out of the window
    expect(w.check(6n)).toBe(false);
    expect(w.check(10n + 100n)).toBe(true); // inside the window, never seen
    expect(w.update(10n + 100n)).toBe(true);
    expect(w.update(10n + 100n)).toBe(false);
    w.update(1_000_000n); // a jump past the whole ring clears it
    expect(w.check(1_000_000n - 1n)).toBe(true);
    expect(w.check(1_000_000n - WINDOW_SIZE)).toBe(false);
  });

  test('check does not move the window (only update after AEAD does)', () => {
    const w = new ReplayWindow();
    w.update(1n);
    expect(w.check(100_000n)).toBe(true);
    expect(w.check(2n)).toBe(true); // a forged huge counter that failed AEAD must not push 2 out
  });
});
