/**
 * Why: a finding is only useful if its owner understands it. This turns a finding's type, path and
 * decoding chain into one plain sentence: "IMEI 354…621 (Luhn-valid) in JSON key IMEI1, inside a
 * base64 body".
 */
import { ownCopy } from '../../own-copy';
import type { IdentifierType } from '../types';
import type { Candidate } from './candidate';

export const TYPE_LABEL: Record<IdentifierType, string> = {
  imei: 'IMEI',
  meid: 'MEID',
  imsi: 'IMSI (SIM subscriber identity)',
  iccid: 'ICCID (SIM card serial)',
  phone: 'Phone number',
  cell_id: 'Cell tower ID',
  location: 'Location',
  mac: 'MAC address',
  android_id: 'Android ID',
  ad_id: 'Advertising ID',
  serial: 'Device serial number',
  email: 'Email address',
};

const STEP_WORDS: Record<string, string> = {
  gzip: 'gzip-compressed',
  deflate: 'deflate-compressed',
  zlib: 'zlib-compressed',
  br: 'Brotli-compressed',
  brotli: 'Brotli-compressed',
  base64: 'base64',
  base64url: 'base64url',
  hex: 'hex-encoded',
  percent: 'percent-encoded',
  urlencoded: 'percent-encoded',
  json: 'JSON',
  xml: 'XML',
  protobuf: 'protobuf',
  grpc: 'gRPC',
  jwt: 'JWT',
  form: 'form',
  multipart: 'multipart',
  query: 'query',
  cookie: 'cookie',
};

/** Where a field sits, in words: "JSON key IMEI1", "query parameter imei", "header X-Device-Id". */
function placeWords(c: Candidate): string {
  const { field } = c;
  const key = c.keyLabel ?? field.key;
  const lastStep = field.chain[field.chain.length - 1] ?? '';
  const source = sourceOf(c.path ?? field.path);
  const keyText = key === null ? '' : ` ${key}`;
  if (key === null) return source === 'body' ? 'the body' : `the ${sourceWords(source)}`;
  if (lastStep === '' && (source === 'header' || source === 'cookie' || source === 'query')) return `${source === 'query' ? 'query parameter' : source}${keyText}`;
  switch (lastStep) {
    case 'json':
      return `JSON key${keyText}`;
    case 'xml':
      return `XML element${keyText}`;
    case 'protobuf':
      return `protobuf field${keyText}`;
    case 'form':
      return `form field${keyText}`;
    case 'multipart':
      return `multipart part${keyText}`;
    case 'jwt':
      return `JWT claim${keyText}`;
    case 'cookie':
      return `cookie${keyText}`;
    case 'query':
      return `query parameter${keyText}`;
  }
  if (source === 'header') return `header${keyText}`;
  if (source === 'cookie') return `cookie${keyText}`;
  if (source === 'query') return `query parameter${keyText}`;
  return `key${keyText}`;
}

function sourceOf(path: string): string {
  const m = /^[A-Za-z_-]+/.exec(path);
  return m ? m[0].toLowerCase() : 'body';
}

function sourceWords(source: string): string {
  if (source === 'query') return 'URL query';
  if (source === 'path' || source === 'url') return 'URL path';
  if (source === 'header') return 'request headers';
  if (source === 'cookie') return 'cookies';
  return source;
}

/** Encodings read as adjectives ("a base64 body"), containers as nouns ("a JWT in header Authorization"). */
const STEP_ADJECTIVE: Record<string, string> = {
  gzip: 'gzip-compressed', deflate: 'deflate-compressed', zlib: 'zlib-compressed', br: 'Brotli-compressed', brotli: 'Brotli-compressed',
  base64: 'base64', base64url: 'base64url', hex: 'hex-encoded', percent: 'percent-encoded', urlencoded: 'percent-encoded',
};
const STEP_NOUN: Record<string, string> = {
  jwt: 'JWT', url: 'URL', json: 'JSON text', xml: 'XML document', protobuf: 'protobuf message', form: 'form', multipart: 'multipart body', query: 'query string',
  grpc: 'gRPC message',
};

/** The outermost place, from the path's first segments: "the body", "header Authorization", "form field data". */
function containerOf(path: string, chain: string[]): { words: string; consumed: number } {
  const segments = path.split('>');
  const first = segments[0] ?? '';
  const named = /^([a-z]+):(.*)$/i.exec(first);
  if (named) {
    const [, source, name] = named;
    const consumed = chain[0] === source ? 1 : 0;
    if (source === 'header') return { words: `header ${name}`, consumed };
    if (source === 'cookie') return { words: `cookie ${name}`, consumed };
    if (source === 'query') return { words: `query parameter ${name}`, consumed };
    return { words: `${source} ${name}`, consumed };
  }
  const second = /^(form|multipart):([^>]*)$/.exec(segments[1] ?? '');
  if (first === 'body' && second && chain[0] === second[1]) {
    return { words: second[1] === 'form' ? `form field ${second[2]}` : `multipart part ${second[2]}`, consumed: 1 };
  }
  return { words: first === 'body' || first === '' ? 'body' : sourceWords(first), consumed: 0 };
}

/** ", inside a base64 body", ", inside a JWT in header Authorization", ", inside a percent-encoded value in form field data". */
function wrappingWords(c: Candidate): string {
  const chain = c.field.chain;
  const { words: container, consumed } = containerOf(c.path ?? c.field.path, chain);
  const steps = chain.slice(consumed, -1);
  const leafIsContainer = chain.length > 0 && chain.length === consumed;
  if (steps.length === 0) return container === 'body' || leafIsContainer || consumed === 0 ? '' : `, inside ${container}`;
  const inner = steps[steps.length - 1]!;
  const adjectives = steps.filter((s) => STEP_ADJECTIVE[s]).map((s) => STEP_ADJECTIVE[s]!).reverse();
  /* A compressed gRPC message is still a gRPC message: "a gzip-compressed gRPC message body". */
  const noun = STEP_NOUN[inner] ?? (steps.includes('grpc') ? STEP_NOUN.grpc : undefined);
  const described = [...new Set(adjectives)].join(', ');
  if (container === 'body') return `, inside a ${[described, noun ?? ''].filter(Boolean).join(' ')} body`.replace(/ body body$/, ' body');
  const thing = noun ? [described, noun].filter(Boolean).join(' ') : `${described} value`;
  return `, inside a ${thing} in ${container}`;
}

export function maskValue(type: IdentifierType, value: string): string {
  if (type === 'location') {
    return value
      .split(',')
      .map((n) => (Number.isFinite(Number(n)) ? Number(n).toFixed(3) : n))
      .join(',');
  }
  if (type === 'email') {
    const at = value.indexOf('@');
    const local = value.slice(0, at);
    return `${local.slice(0, 1)}…${local.length > 1 ? local.slice(-1) : ''}${value.slice(at)}`;
  }
  if (value.length < 10) return value;
  return `${value.slice(0, 3)}…${value.slice(-3)}`;
}

/** Why each type matters, in one sentence (the dashboard shows it beside a finding). */
export const TYPE_MEANING: Record<IdentifierType, string> = {
  imei: 'The IMEI is the phone\'s hardware serial number: it never changes and follows the phone across SIM cards, apps and owners.',
  meid: 'The MEID is the hardware serial number of CDMA phones: like an IMEI, it never changes.',
  imsi: 'The IMSI identifies your SIM subscription to the mobile network; it reveals your operator and country and tracks you across phones.',
  iccid: 'The ICCID is the serial number printed on your SIM card; it identifies the card for its whole life.',
  phone: 'Your phone number identifies you personally and can be used to contact or look you up.',
  cell_id: 'A cell ID names the mobile tower you are connected to; public tower maps turn it into your approximate location.',
  location: 'Coordinates say where the phone is.',
  mac: 'A MAC address identifies a network radio for its whole life; a nearby access point\'s MAC (BSSID) reveals where you are.',
  android_id: 'The Android ID identifies this phone to an app (or, on old Android, to every app) until a factory reset.',
  ad_id: 'The advertising ID links your activity across apps for advertisers; you can reset or delete it in settings.',
  serial: 'The device serial number identifies the phone for its whole life.',
  email: 'An email address identifies you personally.',
};

/**
 * The sentence for a stored finding (when no detector evidence is at hand, e.g. rebuilt from the
 * database): "IMEI 354…621 in JSON key IMEI1, inside a base64 body."
 */
export function explainFinding(f: { type: IdentifierType; value: string; path: string; chain: string[]; key?: string | null; detector: Candidate['detector'] }): string {
  return explainCandidate({
    type: f.type, value: f.value, detector: f.detector, confidence: 1, span: f.value, subject: 'device',
    evidence: f.detector === 'profile' ? 'matches your device profile' : '',
    field: { path: f.path, key: f.key ?? null, keyPath: f.key ? [f.key] : [], value: f.value, chain: f.chain, group: '' },
  });
}

export function explainCandidate(c: Candidate): string {
  const label = c.subject === 'surroundings' && c.type === 'mac' ? 'MAC address of a nearby Wi-Fi access point (BSSID)' : TYPE_LABEL[c.type];
  const evidence = c.evidence ? ` (${c.evidence})` : '';
  const because =
    c.type === 'mac' && c.subject === 'surroundings' ? ' — public Wi-Fi maps turn it into a location'
      : c.type === 'cell_id' ? ' — public cell tower maps turn it into a location'
        : '';
  return `${label} ${maskValue(c.type, c.value)}${evidence} in ${whereWords(c)}${because}.`;
}

/** "JSON key imei, inside a base64 body": where a value sat, in words; a function of its path, key and chain alone. */
function whereWords(c: Candidate): string {
  const path = c.path ?? c.field.path;
  const key = c.keyLabel ?? c.field.key;
  const chain = c.field.chain;
  const known = placesByPath.get(path);
  for (let p = known; p !== undefined; p = p.next) if (p.key === key && sameSteps(p.chain, chain)) return p.words;
  const words = `${placeWords(c)}${wrappingWords(c)}`;
  remember(path, key, chain, words, known);
  return words;
}

/**
 * The words of places already described: the same place (a form's `imsi`, a batch's `device.imei`)
 * comes back flow after flow. Keyed by path, then key and chain; bounded in count and in the length
 * of what it keeps, and it keeps copies (a path may be a slice of a big body).
 */
interface Place {
  key: string | null;
  chain: string[];
  words: string;
  next: Place | undefined;
}
const placesByPath = new Map<string, Place>();
const MAX_PLACES = 2048;
const MAX_PLACES_PER_PATH = 4;
const MAX_PLACE_TEXT = 256;
const MAX_PLACE_STEPS = 16;

function remember(path: string, key: string | null, chain: string[], words: string, known: Place | undefined): void {
  if (path.length > MAX_PLACE_TEXT || (key !== null && key.length > MAX_PLACE_TEXT) || chain.length > MAX_PLACE_STEPS || words.length > 4 * MAX_PLACE_TEXT) return;
  let count = 0;
  for (let p = known; p !== undefined; p = p.next) count++;
  if (count >= MAX_PLACES_PER_PATH) return;
  if (placesByPath.size >= MAX_PLACES) {
    placesByPath.clear();
    known = undefined;
  }
  const steps: string[] = [];
  for (const step of chain) steps.push(ownCopy(step));
  placesByPath.set(ownCopy(path), { key: key === null ? null : ownCopy(key), chain: steps, words: ownCopy(words), next: known });
}

function sameSteps(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
