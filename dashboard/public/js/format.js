/** Why: one place for how times, sizes, severities and identifier types are written on screen. */

export const IDENTIFIER_TYPES = ['imei', 'meid', 'imsi', 'iccid', 'phone', 'cell_id', 'location', 'mac',
  'android_id', 'ad_id', 'serial', 'email'];
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];

const TYPE_LABELS = {
  imei: 'IMEI', meid: 'MEID', imsi: 'IMSI', iccid: 'ICCID', phone: 'phone number', cell_id: 'cell ID',
  location: 'location', mac: 'MAC', android_id: 'Android ID', ad_id: 'advertising ID', serial: 'serial',
  email: 'e-mail',
};

export function typeLabel(type) {
  return TYPE_LABELS[type] || String(type);
}

/** CSS class for an identifier type; unknown types share one colour rather than inventing class names from data. */
export function typeClass(type) {
  return IDENTIFIER_TYPES.includes(type) ? `t-${type}` : 't-other';
}

export function severityRank(sev) {
  const i = SEVERITIES.indexOf(sev);
  return i < 0 ? 0 : i;
}

export function severityClass(sev) {
  return SEVERITIES.includes(sev) ? `sev-${sev}` : 'sev-info';
}

export function time(ms) {
  if (ms === null || ms === undefined) return '';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return '';
  const today = new Date();
  const hhmmss = d.toLocaleTimeString(undefined, { hour12: false });
  return d.toDateString() === today.toDateString() ? hhmmss : `${d.toISOString().slice(0, 10)} ${hhmmss}`;
}

export function dateTime(ms) {
  if (ms === null || ms === undefined) return '';
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { hour12: false });
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function deviceLabel(device, clientIp) {
  return device ? `${device} (${clientIp})` : String(clientIp ?? '');
}

/** Decodes the API's base64 body into bytes. */
export function base64Bytes(b64) {
  if (!b64) return new Uint8Array(0);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Classic hex dump: offset, 16 bytes in hex, printable ASCII. */
export function hexDump(bytesArr, maxBytes) {
  const n = Math.min(bytesArr.length, maxBytes);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    const row = bytesArr.subarray(off, Math.min(off + 16, n));
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, '0') + (i === 7 ? '  ' : ' ');
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
      } else {
        hex += i === 7 ? '    ' : '   ';
      }
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines.join('\n');
}

/** What the severity badge says: the severity, or why there is none yet. */
export function verdictLabel(item) {
  if (item.analysis === 'pending') return 'pending';
  if (item.analysis === 'failed') return 'analysis failed';
  return item.severity || 'info';
}
