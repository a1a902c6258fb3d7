/**
 * Contracts of the analysis engine (pure: no sockets, files, SQLite or ws). decode/ turns a Flow into
 * DecodedFields; detect/ turns fields into Findings; judge/ adds where they went and how bad it is.
 * The finding shape is public (DESIGN.md "Finding record"): change it only by adding fields.
 */

export const IDENTIFIER_TYPES = [
  'imei', 'meid', 'imsi', 'iccid', 'phone', 'cell_id', 'location', 'mac', 'android_id', 'ad_id', 'serial', 'email',
] as const;
export type IdentifierType = (typeof IDENTIFIER_TYPES)[number];

export type Detector = 'profile' | 'pattern' | 'key';
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

/** One leaf value found while unwrapping a payload. */
export interface DecodedField {
  /** Where it was found, e.g. `body>base64>json:$.IMEI1`, `query:imei`, `header:X-Device-Id`. */
  path: string;
  /** Nearest key name (JSON key, form/query name, header name, XML element, protobuf field number), or null. */
  key: string | null;
  /** Key names from the root down to this value (context for detectors: ["device","telephony","imei"]). */
  keyPath: string[];
  /** The leaf value as text (numbers in their decimal form). */
  value: string;
  /** Decoding steps, outermost first, e.g. ["base64","json"]. */
  chain: string[];
  /** Path of the containing object/record, so detectors can see siblings (lat+lon, mcc+mnc+lac+cid). */
  group: string;
}

/** Everything decode produced for one flow, plus the limits it hit (errors are data). */
export interface DecodeResult {
  fields: DecodedField[];
  /** Human-readable notes: "gzip expansion cut at 64 MiB (ratio limit 1000:1)", "depth limit 8 reached at ...". */
  notes: string[];
  /** Names of the limits that were hit (e.g. 'maxDepth', 'maxDecodedBytes', 'maxRatio', 'timeBudget'). */
  limitsHit: string[];
  /** Bytes the decoders produced for this flow (decompression, base64, hex...), at most maxDecodedBytes. */
  decodedBytes?: number;
}

export interface Finding {
  type: IdentifierType;
  /** Normalized value (DESIGN.md "Normalized values"). */
  value: string;
  path: string;
  chain: string[];
  detector: Detector;
  /** 0..1 */
  confidence: number;
  /** One sentence a non-expert understands. */
  explanation: string;
  severity: Severity;
  /** The field key it was found under, when any. */
  key?: string | null;
  /** The user rule (1-based, `--rules` file) that set this finding's severity, when one did. */
  rule?: number;
}

/** Where a flow went and how it travelled. */
export interface Destination {
  host: string;
  serverIp?: string;
  /** ISO 3166-1 alpha-2, when known. */
  country?: string;
  asn?: number;
  /** Network owner (AS organisation). */
  org?: string;
  cleartext: boolean;
  /** Registrable domain of the host (public suffix list), e.g. vnet.cn; none for IP literals. */
  domain?: string;
  /** The server address is loopback, private or link-local: the laptop or the LAN, not looked up. */
  local?: boolean;
  /** The host belongs to a known tracking/analytics/telemetry company (judge/trackers.json or the user's list). */
  tracker?: { company: string; category: string; domain: string };
  /** The phone's home country (profile, IMSI, phone number or --home-country), when known. */
  homeCountry?: string;
  /** The destination country is outside the home region; absent when either is unknown. */
  crossBorder?: boolean;
}

export interface AnalysisResult {
  findings: Finding[];
  fields: DecodedField[];
  destination: Destination;
  /** Highest severity among findings, or 'info' with none. */
  severity: Severity;
  /** The alert sentence of a flow with findings ("IMEI sent in cleartext to ..."); absent without findings. */
  sentence?: string;
  notes: string[];
  limitsHit: string[];
}

/** Device profile as users write it (DESIGN.md "Device profile"). */
export interface DeviceProfile {
  name?: string;
  [type: string]: string | string[] | undefined;
}
