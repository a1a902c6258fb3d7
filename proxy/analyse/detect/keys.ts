/**
 * Why: a value's key is half the evidence. `imei`, `IMEI1`, `SIM1ICCID`, `gps_adid`... say what a
 * value is; `order_id`, `ts`, `price`, `sha1` say what it is not. Keys are compared after folding
 * case and dropping separators, so `device_imei`, `deviceImei` and `Device-IMEI` are one key.
 */
import { ownCopy } from '../../own-copy';

const normalizedCache = new Map<string, string>();
const CACHE_LIMIT = 10_000;

export function normalizeKey(key: string | null | undefined): string {
  if (!key) return '';
  let k = normalizedCache.get(key);
  if (k === undefined) {
    // "X-Device-IMEI": the X- of custom headers says nothing about the value.
    k = key.toLowerCase().replace(/^x-/, '').replace(/[^a-z0-9]/g, '');
    if (normalizedCache.size >= CACHE_LIMIT) normalizedCache.clear();
    normalizedCache.set(ownCopy(key), ownCopy(k));
  }
  return k;
}

export type KeyClass =
  | 'imei' | 'meid' | 'imsi' | 'iccid' | 'phone' | 'cell_id' | 'mac' | 'bssid' | 'android_id' | 'ad_id' | 'serial'
  | 'email' | 'device_id';

/** Vocabularies per class, matched against the normalized key. Order matters: first match wins. */
const KEY_VOCABULARY: Array<[KeyClass, RegExp]> = [
  ['imei', /^(sim\d?|slot\d?|device|phone|dev|hw|my)?imei(sv)?\d?(no|num|number|code)?$|^imei/],
  ['meid', /^(sim\d?|device|dev)?meid\d?$|^meid/],
  ['imsi', /^(sim\d?)?(lte|gsm|cdma|umts|nr)?imsi\d?$|imsi$|^subscriberid$|^subscriber$|^simsubscriberid$/],
  ['iccid', /^(sim\d?)?(lte|gsm|cdma)?iccid\d?$|iccid$|^simserial(number|no)?$|^simserialnum$|^simid$|^icc$|^simcardserial$/],
  ['phone', /^(msisdn|mdn|mobile|mobilenumber|mobileno|mobilephone|phone|phonenumber|phoneno|phonenum|tel|telephone|telnumber|cellphone|cellnumber|line1number|linenumber|ownernumber|userphone|usermobile|contactphone|simnumber|msisdn\d|sim\dmsisdn|sim\dphone|sim\dnumber)$/],
  ['cell_id', /^(sim\d?)?(lte|gsm|umts|wcdma|nr|cdma)?(cellid|cell|cellidentity|eci|nci|ecgi|lcid|utrancid|basestationid)\d?$|^(sim\d?)?cellid|^ci$|^cid$/],
  ['bssid', /^(wifi|ap|connected|current)?bssid$|^bssid/],
  ['mac', /^(wifi|wlan|eth|bt|bluetooth|device|dev|hw|my|sim\d?)?mac(id|addr|address)?\d?$|^macaddress|^(wifi|wlan|bt|bluetooth)macaddress$/],
  ['android_id', /^(x)?androidid$|^ssaid$|^androiddeviceid$|^secureandroidid$/],
  ['ad_id', /^(gps)?adid$|^gaid$|^googleadid$|^googleadvertisingid$|^idfa$|^ifa$|^aaid$|^oaid$|^advertisingid$|^advertiserid$|^adidentifier$|^rdid$|^adtrackingid$|^maid$|^deviceifa$|^xgoogadid$/],
  ['serial', /^(ro)?serialno$|^(build|device|hw|hardware|board|ro|phone|android)?serial(number|no|num)?$|^roserialno$|^robootserialno$|^sn$|^devicesn$|^devsn$/],
  ['email', /^(e)?mail(address)?$|^useremail$|^email\w*$/],
  ['device_id', /^(device|dev|hw|hardware|terminal|handset|unique)(id|identifier|uuid|uid)$|^udid$|^deviceuniqueid$/],
];

/** Keys repeat across fields and flows; their class is remembered (bounded, so hostile keys cannot grow it). */
const classCache = new Map<string, KeyClass | null>();

export function classifyKey(key: string | null | undefined): KeyClass | undefined {
  if (!key) return undefined;
  const cached = classCache.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const k = normalizeKey(key);
  let found: KeyClass | null = null;
  if (k) for (const [cls, re] of KEY_VOCABULARY) if (re.test(k)) { found = cls; break; }
  if (classCache.size >= CACHE_LIMIT) classCache.clear();
  classCache.set(ownCopy(key), found);
  return found ?? undefined;
}

/**
 * Keys that name something that is not a device or user identifier. A value under them is never
 * reported on pattern evidence alone (a Luhn-valid 15-digit `order_id` is not an IMEI).
 */
const NOT_AN_IDENTIFIER =
  /(order|txn|transaction|invoice|receipt|request|req|trace|span|correlation|session|event|message|msg|nonce|timestamp|time|date|expir|created|updated|^ts$|ms$|price|amount|total|cost|fee|balance|count|size|length|offset|limit|version|^ver$|^v$|build|hash|checksum|md5|sha|crc|etag|digest|token|sig|signature|payment|card|tracking|shipment|parcel|ticket|booking|product|sku|item|article|campaign|creative|placement|slot|impression|^bid|price|seq|sequence|index|page|score|duration|latency|height|width|quantity|qty|zip|postal|isbn|ean|upc|gtin|barcode|coupon|promo|reference|ref$|^ref|nonce|salt|key$|secret|iv$)/;

const nonIdentifierCache = new Map<string, boolean>();

export function isNonIdentifierKey(key: string | null | undefined): boolean {
  if (!key) return false;
  let answer = nonIdentifierCache.get(key);
  if (answer === undefined) {
    const k = normalizeKey(key);
    answer = k !== '' && NOT_AN_IDENTIFIER.test(k);
    if (nonIdentifierCache.size >= CACHE_LIMIT) nonIdentifierCache.clear();
    nonIdentifierCache.set(ownCopy(key), answer);
  }
  return answer;
}

export const LATITUDE_KEY = /^(lat|latitude|gpslat|geolat|latdeg|userlat|devicelat|lati)$/;
export const LONGITUDE_KEY = /^(lng|lon|long|longitude|gpslng|gpslon|geolng|geolon|londeg|userlng|userlon|devicelng|devicelon|longi)$/;
export const LATITUDE_E7_KEY = /^(latitudee7|late7)$/;
export const LONGITUDE_E7_KEY = /^(longitudee7|lnge7|lone7)$/;
export const LATLNG_STRING_KEY = /^(ll|latlng|latlon|latlong|location|loc|coords|coordinates|position|pos|geo|gps|geolocation|userlocation|devicelocation|lastlocation|lastknownlocation)$/;

export const MCC_KEY = /^(mcc|mobilecountrycode|homemcc|simmcc|networkmcc)$/;
export const MNC_KEY = /^(mnc|mobilenetworkcode|homemnc|simmnc|networkmnc)$/;
export const LAC_KEY = /^(lac|tac|locationareacode|trackingareacode|ac)$/;
export const CELL_CONTEXT = /cell|tower|radio|lte|gsm|umts|wcdma|nr|bts|enb|gnb|basestation/;

export const COUNTRY_KEY = /^(country|countrycode|countryiso|simcountryiso|networkcountryiso|simcountry|cc|region|regioncode|usercountry|devicecountry)$/;
export const LOCALE_KEY = /^(locale|lang|language|devicelocale|userlocale|acceptlanguage|hl|lc)$/;

/** Keys whose siblings matter: coordinates pair up, cell IDs need MCC/MNC/LAC beside them. */
const SIBLING_CONTEXT_KEY = new RegExp([LATITUDE_KEY, LONGITUDE_KEY, LATITUDE_E7_KEY, LONGITUDE_E7_KEY, MCC_KEY, MNC_KEY, LAC_KEY].map((r) => r.source).join('|'));

/**
 * Everything detectors ask of a key, worked out once per distinct key instead of once per field and
 * detector: a batch of 45 events repeats the same dozen keys.
 */
export interface KeyInfo {
  /** The key itself (the nearest non-numeric key of a field, see keyOf). */
  key: string | null;
  normalized: string;
  cls: KeyClass | undefined;
  /** Names something that is not an identifier (order_id, ts, sha1...). */
  nonIdentifier: boolean;
  /** lat/lon/MCC/MNC/LAC...: other detectors look this field up as a sibling. */
  siblingContext: boolean;
  /** Holds a "lat,lng" text (ll, location, coords...). */
  latLngText: boolean;
}

/** The facts of no key. */
export const NO_KEY_INFO: KeyInfo = Object.freeze({ key: null, normalized: '', cls: undefined, nonIdentifier: false, siblingContext: false, latLngText: false });

const keyInfoCache = new Map<string, KeyInfo>();

/**
 * The last facts looked up per (length, first and last character) of a key: a flow's dozen keys
 * mostly land in slots of their own, and a slot is checked by one comparison instead of hashing
 * the key (each flow's key strings are new). Holds only entries of keyInfoCache.
 */
const RECENT_SLOTS = 256;
const recent = new Array<KeyInfo | undefined>(RECENT_SLOTS).fill(undefined);

function recentSlot(key: string): number {
  return (key.length * 31 + key.charCodeAt(0) * 7 + key.charCodeAt(key.length - 1)) & (RECENT_SLOTS - 1);
}

export function keyInfo(key: string | null | undefined): KeyInfo {
  if (!key) return key === null || key === undefined ? NO_KEY_INFO : { ...NO_KEY_INFO, key };
  const slot = recentSlot(key);
  const last = recent[slot];
  if (last !== undefined && last.key === key) return last;
  let info = keyInfoCache.get(key);
  if (info === undefined) {
    const own = ownCopy(key);
    const normalized = normalizeKey(own);
    info = {
      key: own,
      normalized,
      cls: classifyKey(own),
      nonIdentifier: isNonIdentifierKey(own),
      siblingContext: SIBLING_CONTEXT_KEY.test(normalized),
      latLngText: LATLNG_STRING_KEY.test(normalized),
    };
    if (keyInfoCache.size >= CACHE_LIMIT) {
      keyInfoCache.clear();
      recent.fill(undefined);
    }
    keyInfoCache.set(own, info);
  }
  recent[slot] = info;
  return info;
}
