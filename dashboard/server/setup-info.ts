/**
 * What the Setup view shows: where the proxy listens, QR codes of the phone's setup page and of the
 * CA download, and the steps to configure a phone. Computed once at start (QR codes are SVG data URLs).
 */
import * as os from 'os';
import QRCode from 'qrcode';

export interface SetupInfo {
  proxyHost: string;
  proxyPort: number;
  /** LAN addresses the phone can reach the proxy on. */
  addresses?: string[];
  setupUrl: string;
  caUrl: string;
  /** VPN mode, read on every request (phones added while running show up). */
  wireguard?: {
    /** Each phone's name, addresses and connection status: no keys (the listing anyone with the page sees). */
    status(): Promise<WireGuardSetup>;
    /** One phone's client config, private key included; null for an unknown phone. */
    config(peerName: string): string | null;
  };
}

export interface WireGuardSetup {
  port: number;
  phones: Array<{
    peer: { name: string; ipv4: string; ipv6: string };
    /** Whether the phone is connected: its last handshake (epoch ms) and where it came from. */
    status: { lastHandshakeAt?: number; endpoint?: string; rxBytes: number; txBytes: number };
  }>;
  /** Datagrams the endpoint refused, by reason (only reasons that happened). */
  dropped: Record<string, number>;
}

export interface SetupView extends Required<Omit<SetupInfo, 'wireguard'>> {
  wireguard?: WireGuardSetup;
  qr: { setup: string; ca: string };
  steps: { android: string[]; ios: string[] };
}

export function lanAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

/** A QR code as an SVG document (no script: the qrcode library writes paths only). */
export function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}

async function qrDataUrl(text: string): Promise<string> {
  return `data:image/svg+xml;base64,${Buffer.from(await qrSvg(text)).toString('base64')}`;
}

export async function buildSetupView(info: SetupInfo): Promise<SetupView> {
  const addresses = info.addresses ?? lanAddresses();
  const { wireguard: _status, ...rest } = info;
  return {
    ...rest,
    addresses,
    qr: { setup: await qrDataUrl(info.setupUrl), ca: await qrDataUrl(info.caUrl) },
    steps: {
      android: [
        'Join the same Wi-Fi network as this laptop.',
        `Settings → Network & internet → Wi-Fi → long-press the network → Modify → Advanced → Proxy: Manual, host ${info.proxyHost}, port ${info.proxyPort}.`,
        `Open ${info.setupUrl} in the phone's browser (or scan the QR code) and download the phonehome CA.`,
        'Settings → Security → Encryption & credentials → Install a certificate → CA certificate, and pick the downloaded file.',
        'Use the phone as usual; alerts appear here as they happen. Apps that pin certificates show up as TLS failures.',
      ],
      ios: [
        'Join the same Wi-Fi network as this laptop.',
        `Settings → Wi-Fi → (i) next to the network → Configure Proxy → Manual: server ${info.proxyHost}, port ${info.proxyPort}.`,
        `Open ${info.setupUrl} in Safari (or scan the QR code) and download the profile with the phonehome CA.`,
        'Settings → General → VPN & Device Management → install the downloaded profile.',
        'Settings → General → About → Certificate Trust Settings → enable full trust for the phonehome CA.',
      ],
    },
  };
}
