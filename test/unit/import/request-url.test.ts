/**
 * The shortcut that writes a captured request's URL without a URL object must give exactly what
 * WHATWG URL gives (the slow path) for every input it accepts, and must accept the plain requests
 * phones send (else it buys nothing).
 */
import { plainRequestUrl, requestUrl, slowRequestUrl } from '../../../proxy/capture/import/pcap/request-url';

const HOSTS = [
  'api.example.com', 'API.example.com', 'api.example.com:8080', 'api.example.com:80', 'api.example.com:080', 'api.example.com:0',
  'api.example.com:65535', 'api.example.com:65536', 'api.example.com:', 'api.example.com.', 'a..b', '-a.example', 'a-.example',
  'my_host.example', '_dmarc.example', 'xn--bcher-kva.example', 'bücher.example', 'localhost', 'zzhc.vnet.cn:9999', '1.2.3.4', '1.2.3.4:9998',
  '01.2.3.4', '1.2.3', '0x7f.1', '256.1.1.1', 'a.0x10', 'a.123', '123', 'host.1a', '[::1]', '[::1]:8080', 'user@host', 'h%41st', 'ho st', '',
];
const TARGETS = [
  '/', '/v1/events?sdk=4.2&n=7', '/config?app=com.example.app&v=1234', '/register', '/a/./b', '/a/../b', '/a/%2e%2E/b', '/.well-known/x',
  '/a/.hidden', '/a..b/c', '/file.json', '/p?q=a b', "/p?q='x'", '/p?q="x"', '/p?q=<x>', '/p#frag', '/p?q=#f', '/p?x=\\y', '/p\\q',
  "/it's", '/{x}', '/a|b', '/a^b', '/a`b', '/p?{x}|^`', '/%zz', '/%41', '/p?%zz&%41', '/caf\u00e9', '/p?caf\u00e9', '//double', '/a;b=c',
  '/p?a=1?b=2', '/p?', '/p?x=/../y', '/p?x=/./', '/a/.?x', '/a/%2e?x', '/a/..?', '/a/%2E%2e/?q', '*', 'relative', 'http://other.example/x', 'HTTP://other.example:81/x?y', '/a/b/..', '/a/b/.', '/~user/!$&()*+,;=:@',
];
const PORTS = [80, 8080, 9999, 443];

test('the shortcut agrees with WHATWG URL on everything it accepts', () => {
  let accepted = 0;
  for (const host of HOSTS) {
    for (const target of TARGETS) {
      for (const port of PORTS) {
        const fast = plainRequestUrl(host, target, port);
        if (!fast) continue;
        accepted++;
        expect({ host, target, port, ...fast }).toEqual({ host, target, port, ...slowRequestUrl(host, target, port) });
      }
    }
  }
  expect(accepted).toBeGreaterThan(100);
});

test('random printable targets and hosts: the shortcut never disagrees', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const alphabet = "abcXYZ019-._~!$&'()*+,;=:@/%?#[]\\^`{|}<>\" \u00e9";
  const pick = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
  for (let i = 0; i < 20000; i++) {
    const host = rand() < 0.5 ? HOSTS[Math.floor(rand() * HOSTS.length)] : pick(1 + Math.floor(rand() * 12)).replace(/[/?#]/g, '');
    const target = '/' + pick(Math.floor(rand() * 20));
    const port = PORTS[i % PORTS.length];
    const fast = plainRequestUrl(host, target, port);
    if (fast) expect({ host, target, ...fast }).toEqual({ host, target, ...slowRequestUrl(host, target, port) });
  }
});

test('what phones send is taken by the shortcut', () => {
  expect(plainRequestUrl('api3.tracker.example', '/v1/events?sdk=4.2&n=7', 9999)).toEqual({ hostname: 'api3.tracker.example', href: 'http://api3.tracker.example:9999/v1/events?sdk=4.2&n=7' });
  expect(plainRequestUrl('zzhc.vnet.cn:9998', '/', 9998)).toEqual({ hostname: 'zzhc.vnet.cn', href: 'http://zzhc.vnet.cn:9998/' });
  expect(plainRequestUrl('203.0.113.7', '/config?v=1', 80)).toEqual({ hostname: '203.0.113.7', href: 'http://203.0.113.7/config?v=1' });
  /* A Host naming port 80 on a connection to 8080: the URL names the port connected to, as before. */
  expect(requestUrl('h.example:80', '/x', 8080)).toEqual(slowRequestUrl('h.example:80', '/x', 8080));
  expect(requestUrl(undefined, '/x', 8080)).toEqual({});
  /* Dot segments are resolved only in the path: in the query they are text, and the shortcut takes them. */
  expect(plainRequestUrl('h.example', '/p?x=/../y', 80)).toEqual({ hostname: 'h.example', href: 'http://h.example/p?x=/../y' });
  expect(plainRequestUrl('h.example', '/a/..?x', 80)).toBeUndefined();
});
