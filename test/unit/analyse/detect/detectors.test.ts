/**
 * Table-driven detector tests: each row is decoded fields in, exact findings (type + normalized value
 * + detector) out. Key names and value validation must agree; look-alikes must produce nothing.
 */
import { detectFields } from '../../../../proxy/analyse/detect';
import type { DecodedField } from '../../../../proxy/analyse/types';
import { jsonField, luhn, queryField, textField } from './fields';

const IMEI = luhn('35420109876543'); // TAC reporting body 35 (BABT)
const IMEI_ODD_TAC = luhn('12420109876543'); // 12 is no reporting body
const NOT_LUHN = IMEI.slice(0, 14) + String((Number(IMEI[14]) + 1) % 10);
const ICCID = luhn('894701234567890123');
const UUID = '3f2c1a9e-7b4d-4c1e-9a2b-5d6e7f8a9b0c';

type Row = [string, DecodedField[], Array<[string, string, string?]>];

const rows: Row[] = [
  // imei
  ['imei under imei key', [jsonField('imei', IMEI)], [['imei', IMEI, 'key']]],
  ['IMEI1 with dashes', [jsonField('IMEI1', `${IMEI.slice(0, 2)}-${IMEI.slice(2, 8)}-${IMEI.slice(8, 14)}-${IMEI[14]}`)], [['imei', IMEI, 'key']]],
  ['14-digit IMEI gets its check digit', [jsonField('device_imei', IMEI.slice(0, 14))], [['imei', IMEI, 'key']]],
  ['IMEISV under imeisv', [jsonField('imeisv', `${IMEI.slice(0, 14)}42`)], [['imei', IMEI, 'key']]],
  ['Luhn-valid 15 digits under order_id is not an IMEI', [jsonField('order_id', IMEI)], []],
  ['IMEI in free text, by pattern', [textField(`device ${IMEI} registered`)], [['imei', IMEI, 'pattern']]],
  ['non-Luhn under imei key', [jsonField('imei', NOT_LUHN)], []],
  ['all-zero IMEI placeholder', [jsonField('imei', '000000000000000')], []],
  ['Luhn-valid but no reporting body, no key', [textField(IMEI_ODD_TAC)], []],
  ['Luhn-valid with a 1990s reporting body (49), no key: not reported on pattern alone', [jsonField('value', luhn('49015420323751'))], []],
  ['the same number under an imei key is an IMEI', [jsonField('imei', luhn('49015420323751'))], [['imei', luhn('49015420323751'), 'key']]],
  ['Luhn-valid with a current reporting body (86), no key', [jsonField('value', luhn('86209703123456'))], [['imei', luhn('86209703123456'), 'pattern']]],
  ['dual-SIM IMEIs as a list under one key', [jsonField('imei', `${IMEI},${luhn('35420109876544')}`)], [['imei', IMEI, 'key'], ['imei', luhn('35420109876544'), 'key']]],
  ['IMEI inside text under an imei key', [jsonField('imei', `IMEI: ${IMEI}`)], [['imei', IMEI, 'pattern']]],
  ['IMEI as deviceId', [jsonField('deviceId', IMEI)], [['imei', IMEI, 'key']]],
  ['IMEI digits inside a decimal number', [textField(`0.${IMEI}`)], []],
  // meid
  ['MEID 14 hex', [jsonField('meid', 'a1000012345678')], [['meid', 'A1000012345678', 'key']]],
  ['MEID decimal form', [jsonField('MEID', '270113177609606898')], [['meid', 'A10000009296F2', 'key']]],
  ['MEID placeholder', [jsonField('meid', 'ffffffffffffff')], []],
  // imsi
  ['IMSI under SIM1LTEIMSI', [jsonField('SIM1LTEIMSI', '460011234567890')], [['imsi', '460011234567890', 'key']]],
  ['IMSI with unallocated MCC', [jsonField('imsi', '999011234567890')], []],
  ['IMSI-shaped bare value, pattern only', [{ path: 'body>protobuf:3', key: '3', keyPath: ['3'], value: '242011234567891', chain: ['protobuf'], group: 'body>protobuf' }], [['imsi', '242011234567891', 'pattern']]],
  ['IMSI-shaped under a neutral key is not enough', [jsonField('value', '242011234567891')], []],
  ['IMSI-shaped under a request id', [jsonField('request_id', '242011234567891')], []],
  // iccid
  ['ICCID with F padding', [jsonField('SIM1ICCID', `${ICCID}F`)], [['iccid', ICCID, 'key']]],
  ['ICCID by pattern in text', [textField(`sim=${ICCID};`)], [['iccid', ICCID, 'pattern']]],
  ['89-prefix non-Luhn without key', [textField(ICCID.slice(0, -1) + String((Number(ICCID.slice(-1)) + 1) % 10))], []],
  // phone
  ['msisdn international with spaces', [jsonField('msisdn', '+47 912 34 567')], [['phone', '+4791234567', 'key']]],
  ['msisdn without +', [queryField('msisdn', '4791234567')], [['phone', '+4791234567', 'key']]],
  ['national number without a country: not guessed', [jsonField('phone', '912 34 567')], []],
  ['national number with a country sibling', [jsonField('country', 'NO'), jsonField('phone', '912 34 567')], [['phone', '+4791234567', 'key']]],
  ['national number with a locale', [jsonField('locale', 'nb_NO'), jsonField('mobile', '41234567')], [['phone', '+4741234567', 'key']]],
  ['national number with the IMSI\'s country', [jsonField('imsi', '234101234567890'), jsonField('msisdn', '07911 123456')], [['imsi', '234101234567890', 'key'], ['phone', '+447911123456', 'key']]],
  ['tel: link in text', [textField('call <a href="tel:+4791234567">us</a>')], [['phone', '+4791234567', 'pattern']]],
  ['short number under phone', [jsonField('phone', '12345')], []],
  ['valid number under no phone key', [jsonField('invoice', '+4791234567')], []],
  // cell_id
  ['cid without cell context', [jsonField('cid', '88123456')], []],
  ['cid with mcc/mnc/lac siblings', [jsonField('mcc', '242'), jsonField('mnc', '01'), jsonField('lac', '3120'), jsonField('cid', '88123456')], [['cell_id', '88123456', 'key']]],
  ['cellid in hex', [jsonField('cellid', '0x5460A3')], [['cell_id', String(0x5460a3), 'key']]],
  ['ci inside a cell object', [jsonField('ci', '26843545', { parents: ['lte_cell'] })], [['cell_id', '26843545', 'key']]],
  ['unavailable cell id (Integer.MAX_VALUE)', [jsonField('SIM1CELLID', '2147483647')], []],
  ['compound mcc-mnc-lac-cid string', [jsonField('cell_id', '242-01-3120-26843545')], [['cell_id', '26843545', 'key']]],
  // location
  ['lat/lon siblings', [jsonField('lat', '59.913868'), jsonField('lon', '10.752245')], [['location', '59.913868,10.752245', 'key']]],
  ['latitude alone', [jsonField('latitude', '59.913868')], []],
  ['out of range', [jsonField('lat', '159.9'), jsonField('lng', '10.75')], []],
  ['0,0 placeholder', [jsonField('lat', '0.0'), jsonField('lng', '0.0')], []],
  ['"lat,lng" string under ll', [queryField('ll', '59.9139,10.7522')], [['location', '59.9139,10.7522', 'key']]],
  ['E7 integers', [jsonField('latitudeE7', '599127300'), jsonField('longitudeE7', '107460900')], [['location', '59.91273,10.74609', 'key']]],
  ['price and tax that look like coordinates', [jsonField('price', '48.8566'), jsonField('tax', '2.3522')], []],
  ['geo: URI in text', [textField('open geo:59.9139,10.7522?z=15')], [['location', '59.9139,10.7522', 'pattern']]],
  // mac
  ['bare hex MAC under mac key', [jsonField('wifi_mac', 'D46A6A123456')], [['mac', 'd4:6a:6a:12:34:56', 'key']]],
  ['colon MAC in text', [textField('iface wlan0 hwaddr d4:6a:6a:12:34:56 up')], [['mac', 'd4:6a:6a:12:34:56', 'pattern']]],
  ['dash MAC under MACID', [jsonField('MACID', 'D4-6A-6A-12-34-56')], [['mac', 'd4:6a:6a:12:34:56', 'key']]],
  ['Android MAC placeholder', [jsonField('mac', '02:00:00:00:00:00')], []],
  ['bare 12 hex without a key is not a MAC', [jsonField('etag', 'd46a6a123456')], []],
  ['certificate fingerprint is not a MAC', [textField('AB:CD:EF:01:23:45:67:89:AB:CD')], []],
  ['BSSID', [jsonField('bssid', 'd4:6a:6a:12:34:57')], [['mac', 'd4:6a:6a:12:34:57', 'key']]],
  // android_id
  ['android_id', [jsonField('android_id', 'A1B2C3D4E5F60718')], [['android_id', 'a1b2c3d4e5f60718', 'key']]],
  ['16 hex under hardware_id', [jsonField('hardware_id', 'a1b2c3d4e5f60718')], [['android_id', 'a1b2c3d4e5f60718', 'key']]],
  ['16 hex nonce', [jsonField('nonce', 'a1b2c3d4e5f60718')], []],
  ['buggy Android 2.2 constant', [jsonField('androidId', '9774d56d682e549c')], []],
  // ad_id
  ['gps_adid upper case', [jsonField('gps_adid', UUID.toUpperCase())], [['ad_id', UUID, 'key']]],
  ['idfa in query', [queryField('idfa', UUID)], [['ad_id', UUID, 'key']]],
  ['UUID under request_id', [jsonField('request_id', UUID)], []],
  ['all-zero advertising id', [jsonField('advertising_id', '00000000-0000-0000-0000-000000000000')], []],
  // serial
  ['ro.serialno', [jsonField('ro.serialno', 'R58M12ABCDE')], [['serial', 'R58M12ABCDE', 'key']]],
  ['Build.SERIAL nested', [jsonField('SERIAL', 'ZY22345XYZ', { parents: ['BUILD'] })], [['serial', 'ZY22345XYZ', 'key']]],
  ['serial unknown', [jsonField('serial', 'unknown')], []],
  ['sn as a sequence number', [jsonField('sn', '17')], []],
  // email
  ['email in text, normalized', [textField('contact Kari.Nordmann@Example.NO today')], [['email', 'kari.nordmann@example.no', 'pattern']]],
  ['retina asset name', [jsonField('icon', 'logo@2x.png')], []],
  ['npm scope', [jsonField('package', '@scope/pkg@1.2.3')], []],
];

describe('detectors', () => {
  it.each(rows)('%s', (_name, fields, expected) => {
    const found = detectFields(fields).map((d) => [d.type, d.value, d.detector]);
    const wanted = expected.map(([type, value, detector]) => [type, value, detector ?? expect.any(String)]);
    expect(found.sort()).toEqual(wanted.sort());
  });

  it('explains a finding in words, with the value shortened', () => {
    const [d] = detectFields([jsonField('IMEI1', IMEI, { chain: ['base64', 'json'], group: 'body>base64>json:$' })]);
    expect(d!.explanation).toBe(`IMEI ${IMEI.slice(0, 3)}…${IMEI.slice(-3)} (Luhn-valid) in JSON key IMEI1, inside a base64 body.`);
  });

  it('says a BSSID is a nearby access point that reveals location', () => {
    const [d] = detectFields([jsonField('bssid', 'd4:6a:6a:12:34:57')]);
    expect(d!.subject).toBe('surroundings');
    expect(d!.explanation).toMatch(/access point.*location/);
  });

  it('treats a MAC listed among Wi-Fi access points as surroundings, the phone\'s own as device', () => {
    const ap = jsonField('macAddress', 'd4:6a:6a:12:34:58', { parents: ['wifiAccessPoints', '0'] });
    const own = jsonField('wifi_mac', 'd4:6a:6a:12:34:59');
    const subjects = Object.fromEntries(detectFields([ap, own]).map((d) => [d.value, d.subject]));
    expect(subjects).toEqual({ 'd4:6a:6a:12:34:58': 'surroundings', 'd4:6a:6a:12:34:59': 'device' });
  });

  it('reports one identifier once per path even when several detectors see it', () => {
    const found = detectFields([jsonField('imei', IMEI), textField(`${IMEI} ${IMEI}`)]);
    expect(found.map((d) => [d.type, d.path])).toEqual([['imei', 'body>json:$.imei'], ['imei', 'body']]);
  });

  it('gives key evidence more confidence than pattern evidence', () => {
    const [byKey] = detectFields([jsonField('imei', IMEI)]);
    const [byPattern] = detectFields([textField(IMEI)]);
    expect(byKey!.confidence).toBeGreaterThan(byPattern!.confidence);
  });
});
