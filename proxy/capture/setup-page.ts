/**
 * The page a phone opens at http://phonehome.setup/ (like mitmproxy's mitm.it): downloads of this
 * install's CA in every form a phone needs, with short install steps per platform. Served by the
 * proxy itself over plain HTTP, so it is static HTML with no scripts and a strict CSP.
 */
import * as crypto from 'crypto';
import type * as http from 'http';
import type { CertificateAuthority } from '../../certs/ca';

export interface SetupPageInfo {
  ca: CertificateAuthority;
  /** The address the phone's Wi-Fi proxy setting points at. */
  proxyHost: string;
  proxyPort: number;
  dashboardUrl: string;
}

interface Download {
  contentType: string;
  fileName: string;
  body: Buffer;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:44em;margin:1em auto;padding:0 1em;line-height:1.45;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
a.dl{display:inline-block;margin:.2em .4em .2em 0;padding:.45em .8em;border:1px solid #36c;border-radius:.3em;text-decoration:none;color:#36c}
code{background:#f3f3f3;padding:0 .2em;word-break:break-all}.fp{font-size:.85em;color:#555}`;
const STYLE_HASH = crypto.createHash('sha256').update(STYLE).digest('base64');
const CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** A stable UUID derived from the certificate, so repeated profile downloads are identical. */
function uuidFrom(seed: string): string {
  const h = crypto.createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

/** An unsigned iOS configuration profile holding the CA as a com.apple.security.root payload. */
export function mobileConfigFor(ca: CertificateAuthority): string {
  const fingerprint = crypto.createHash('sha256').update(ca.certDer).digest('hex');
  const name = 'phonehome CA';
  const base64 = ca.certDer.toString('base64').match(/.{1,52}/g)?.join('\n\t\t\t') ?? '';
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>phonehome-ca.cer</string>
			<key>PayloadContent</key>
			<data>
			${base64}
			</data>
			<key>PayloadDescription</key>
			<string>Adds the phonehome certificate authority so phonehome can show this phone's HTTPS traffic.</string>
			<key>PayloadDisplayName</key>
			<string>${escapeXml(name)}</string>
			<key>PayloadIdentifier</key>
			<string>phonehome.ca.${fingerprint.slice(0, 16)}.cert</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>${uuidFrom(fingerprint + ':cert')}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Trust the phonehome certificate authority of one laptop (SHA-256 ${fingerprint}). Remove this profile when you stop using phonehome.</string>
	<key>PayloadDisplayName</key>
	<string>${escapeXml(name)}</string>
	<key>PayloadIdentifier</key>
	<string>phonehome.ca.${fingerprint.slice(0, 16)}</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>${uuidFrom(fingerprint + ':profile')}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
`;
}

const downloadsByCa = new WeakMap<CertificateAuthority, Map<string, Download>>();

function downloadsFor(ca: CertificateAuthority): Map<string, Download> {
  let downloads = downloadsByCa.get(ca);
  if (!downloads) {
    downloads = buildDownloads(ca);
    downloadsByCa.set(ca, downloads);
  }
  return downloads;
}

function buildDownloads(ca: CertificateAuthority): Map<string, Download> {
  const der: Download = { contentType: 'application/x-x509-ca-cert', fileName: 'phonehome-ca.crt', body: ca.certDer };
  return new Map<string, Download>([
    ['/ca.pem', { contentType: 'application/x-pem-file', fileName: 'phonehome-ca.pem', body: Buffer.from(ca.certPem) }],
    ['/ca.crt', der],
    ['/ca.cer', { ...der, fileName: 'phonehome-ca.cer' }],
    [`/${ca.androidSystemFileName()}`, { contentType: 'application/x-pem-file', fileName: ca.androidSystemFileName(), body: Buffer.from(ca.certPem) }],
    ['/ca.mobileconfig', { contentType: 'application/x-apple-aspen-config', fileName: 'phonehome-ca.mobileconfig', body: Buffer.from(mobileConfigFor(ca)) }],
  ]);
}

function colonHex(bytes: Buffer): string {
  return bytes.toString('hex').toUpperCase().match(/../g)?.join(':') ?? '';
}

export function setupPageHtml(info: SetupPageInfo): string {
  const { ca } = info;
  const hashFile = escapeHtml(ca.androidSystemFileName());
  const fingerprint = colonHex(crypto.createHash('sha256').update(ca.certDer).digest());
  const proxy = `${escapeHtml(info.proxyHost)}:${info.proxyPort}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>phonehome setup</title><style>${STYLE}</style></head>
<body>
<h1>phonehome: trust this laptop's certificate</h1>
<p>This phone is using phonehome as its proxy (<code>${proxy}</code>). Plain HTTP is already recorded.
To see HTTPS too, install the certificate authority below. It was created for this laptop only; remove it when you are done.</p>
<p><a class="dl" href="/ca.crt">Android (ca.crt)</a><a class="dl" href="/ca.mobileconfig">iPhone / iPad profile</a><a class="dl" href="/ca.pem">PEM (ca.pem)</a><a class="dl" href="/ca.cer">DER (ca.cer)</a><a class="dl" href="/${hashFile}">Android system store (${hashFile})</a></p>
<p class="fp">SHA-256 fingerprint: <code>${fingerprint}</code><br>Check it matches <code>phonehome ca | openssl x509 -noout -fingerprint -sha256</code> on the laptop.</p>

<h2>Android (user certificate store)</h2>
<ol><li>Download <a href="/ca.crt">ca.crt</a>.</li>
<li>Settings → Security → Encryption &amp; credentials → Install a certificate → <b>CA certificate</b> → Install anyway → choose the downloaded file. (Menu names vary by maker; search Settings for “certificate”.)</li>
<li>Android 7 and newer: apps trust user certificates only if they opt in (browsers and debug builds do; most apps do not). Their HTTPS will show as a TLS failure in phonehome. For those, use a rooted phone or an emulator and the system store below.</li></ol>

<h2>Android (system store: rooted phones and emulators)</h2>
<ol><li>On the laptop: <code>phonehome ca --android-system</code> writes <code>${hashFile}</code> (or download <a href="/${hashFile}">${hashFile}</a>).</li>
<li>Android 13 and older: <code>adb root</code>, <code>adb remount</code>, <code>adb push ${hashFile} /system/etc/security/cacerts/</code>, <code>adb shell chmod 644 /system/etc/security/cacerts/${hashFile}</code>, <code>adb reboot</code>. (Emulators: start them with <code>-writable-system</code>.)</li>
<li>Android 14 and newer read CAs from <code>/apex/com.android.conscrypt/cacerts</code>: mount a tmpfs copy of that folder with the file added, or use a Magisk module that installs user certificates as system ones.</li></ol>

<h2>iPhone and iPad</h2>
<ol><li>Open this page in <b>Safari</b> and tap <a href="/ca.mobileconfig">the profile</a>; allow the download.</li>
<li>Settings → General → VPN &amp; Device Management → phonehome CA → Install.</li>
<li>Settings → General → About → Certificate Trust Settings → enable full trust for the phonehome CA.</li></ol>

<h2>Apps that still fail</h2>
<p>Apps that pin their certificate refuse any CA you install; phonehome passes their traffic through untouched and lists them as TLS failures with the server name, so you still see where they connect.
Apps that ignore the Wi-Fi proxy do not appear at all; VPN mode (WireGuard) will cover them.</p>
<p>The recorded traffic is shown on the laptop at <code>${escapeHtml(info.dashboardUrl)}</code>.</p>
</body></html>
`;
}

function send(req: http.IncomingMessage, res: http.ServerResponse, status: number, headers: Record<string, string>, body: Buffer): void {
  res.writeHead(status, {
    'Content-Length': String(body.length),
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': CSP,
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Answers one request for the setup page or one of its downloads; anything else is 404 (405 for non-GET/HEAD). */
export function serveSetupPage(req: http.IncomingMessage, res: http.ServerResponse, info: SetupPageInfo): void {
  const text = (status: number, message: string, extra: Record<string, string> = {}) =>
    send(req, res, status, { 'Content-Type': 'text/plain; charset=utf-8', ...extra }, Buffer.from(message + '\n'));
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    text(405, 'phonehome setup: only GET and HEAD are supported', { Allow: 'GET, HEAD' });
    return;
  }
  const rawPath = (req.url ?? '/').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '');
  const pathname = rawPath.split(/[?#]/, 1)[0] || '/';
  if (pathname === '/' || pathname === '/index.html') {
    send(req, res, 200, { 'Content-Type': 'text/html; charset=utf-8' }, Buffer.from(setupPageHtml(info)));
    return;
  }
  const download = downloadsFor(info.ca).get(pathname);
  if (!download) {
    text(404, 'phonehome setup: not found (open / for the certificate downloads)');
    return;
  }
  send(req, res, 200, { 'Content-Type': download.contentType, 'Content-Disposition': `attachment; filename="${download.fileName}"` }, download.body);
}
