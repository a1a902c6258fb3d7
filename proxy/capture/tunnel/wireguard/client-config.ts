/**
 * The config a phone's WireGuard app imports (as text or QR code): full tunnel for IPv4 and IPv6,
 * DNS through phonehome, the laptop's LAN address as endpoint, and PersistentKeepalive = 25 because
 * phonehome only answers handshakes and could not reach a phone after a quiet spell otherwise.
 */
import QRCode from 'qrcode';
import type { TunnelPeer } from '../types';
import { GATEWAY_IPV4, GATEWAY_IPV6, TUNNEL_MTU } from './addresses';

export const PERSISTENT_KEEPALIVE_S = 25;

export interface ClientConfigInput {
  peer: TunnelPeer;
  privateKey: string;
  serverPublicKey: string;
  /** host:port the phone reaches the laptop on (IPv6 hosts in brackets). */
  endpoint: string;
}

export function clientConfig(c: ClientConfigInput): string {
  return [
    '[Interface]',
    `# phonehome: ${c.peer.name}`,
    `PrivateKey = ${c.privateKey}`,
    `Address = ${c.peer.ipv4}/32, ${c.peer.ipv6}/128`,
    `DNS = ${GATEWAY_IPV4}, ${GATEWAY_IPV6}`,
    `MTU = ${TUNNEL_MTU}`,
    '',
    '[Peer]',
    `PublicKey = ${c.serverPublicKey}`,
    'AllowedIPs = 0.0.0.0/0, ::/0',
    `Endpoint = ${c.endpoint}`,
    `PersistentKeepalive = ${PERSISTENT_KEEPALIVE_S}`,
    '',
  ].join('\n');
}

export function formatEndpoint(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The config as a QR code for a terminal (half-block characters). */
export function terminalQr(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'terminal', small: true, errorCorrectionLevel: 'L' });
}

/** The config as an SVG data URL, for the dashboard's setup view. */
export async function svgQrDataUrl(config: string): Promise<string> {
  const svg = await QRCode.toString(config, { type: 'svg', errorCorrectionLevel: 'L', margin: 2 });
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
}
