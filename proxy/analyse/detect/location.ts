/**
 * Why: coordinates are the most personal thing a phone sends. They come as lat/lon sibling keys,
 * E7 integers (`latitudeE7`), or "lat,lng" strings; numbers that merely look like coordinates
 * (`"price": 48.8566`) are ignored because no location key vouches for them.
 */
import type { DecodedField } from '../types';
import type { Candidate } from './candidate';
import { type KeyInfo, LATITUDE_E7_KEY, LATITUDE_KEY, LONGITUDE_E7_KEY, LONGITUDE_KEY, normalizeKey } from './keys';

type Emit = (c: Omit<Candidate, 'subject'> & { subject?: Candidate['subject'] }) => void;

const DECIMAL = /^-?\d{1,3}\.\d+$/;

function normalizeCoordinate(n: number): string {
  return String(Number(n.toFixed(7)));
}

function validPair(lat: number, lon: number): boolean {
  return Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180 && !(lat === 0 && lon === 0);
}

function precisionOf(text: string): number {
  const dot = text.indexOf('.');
  return dot < 0 ? 0 : text.length - dot - 1;
}

/** Coordinates: a lat key and a lon key in the same object, decimal degrees or E7 integers. */
export function detectLocationInGroup(fields: DecodedField[], emit: Emit): void {
  let lat: DecodedField | undefined;
  let lon: DecodedField | undefined;
  let e7 = false;
  for (const f of fields) {
    const k = normalizeKey(f.key);
    if (!lat && LATITUDE_KEY.test(k) && DECIMAL.test(f.value.trim())) lat = f;
    else if (!lon && LONGITUDE_KEY.test(k) && DECIMAL.test(f.value.trim())) lon = f;
    else if (!lat && LATITUDE_E7_KEY.test(k) && /^-?\d{1,10}$/.test(f.value.trim())) { lat = f; e7 = true; }
    else if (!lon && LONGITUDE_E7_KEY.test(k) && /^-?\d{1,10}$/.test(f.value.trim())) { lon = f; e7 = true; }
  }
  if (!lat || !lon) return;
  const scale = e7 ? 1e-7 : 1;
  const latN = Number(lat.value.trim()) * scale;
  const lonN = Number(lon.value.trim()) * scale;
  if (!validPair(latN, lonN)) return;
  const precision = e7 ? 7 : Math.min(precisionOf(lat.value.trim()), precisionOf(lon.value.trim()));
  emit({
    type: 'location',
    value: `${normalizeCoordinate(latN)},${normalizeCoordinate(lonN)}`,
    detector: 'key',
    confidence: precision >= 3 ? 0.9 : 0.7,
    field: lat,
    span: `${lat.path}|${lon.path}`,
    evidence: [e7 ? 'E7 integers' : '', precision >= 4 ? 'precise to about 10 m' : precision >= 3 ? 'precise to about 100 m' : 'city-level'].filter(Boolean).join(', '),
    path: lat.path,
    keyLabel: `${lat.key}/${lon.key}`,
    subject: 'surroundings',
  });
}

const LATLNG_TEXT = /^\s*\(?\s*(-?\d{1,2}\.\d{2,})\s*[,;\s]\s*(-?\d{1,3}\.\d{2,})\s*\)?\s*$/;
const GEO_URI = /geo:(-?\d{1,2}\.\d{2,}),(-?\d{1,3}\.\d{2,})/g;

/** "lat,lng" under a location key, and geo: URIs anywhere (`colon`: the value has a ':', which a geo: URI needs). */
export function detectLocationInText(field: DecodedField, key: KeyInfo, colon: boolean, emit: Emit): void {
  const geo = colon && field.value.includes('geo:');
  if (!key.latLngText && !geo) return;
  const pairs: Array<[string, string, string, 'key' | 'pattern']> = [];
  if (key.latLngText) {
    const m = LATLNG_TEXT.exec(field.value);
    if (m) pairs.push([m[1]!, m[2]!, field.value.trim(), 'key']);
  }
  if (geo) for (const m of field.value.matchAll(GEO_URI)) pairs.push([m[1]!, m[2]!, m[0], 'pattern']);
  for (const [latText, lonText, span, detector] of pairs) {
    const lat = Number(latText);
    const lon = Number(lonText);
    if (!validPair(lat, lon)) continue;
    const precision = Math.min(precisionOf(latText), precisionOf(lonText));
    emit({
      type: 'location',
      value: `${normalizeCoordinate(lat)},${normalizeCoordinate(lon)}`,
      detector,
      confidence: detector === 'key' ? (precision >= 3 ? 0.9 : 0.7) : 0.8,
      field,
      span,
      evidence: detector === 'key' ? '"lat,lng" text' : 'geo: link',
    });
  }
}
