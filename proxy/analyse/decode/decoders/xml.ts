/**
 * A small, tolerant XML reader of our own: element text and attributes become fields
 * (`xml:/request/device/imei`, `xml:/request/device/@id`). Only the five predefined entities and
 * numeric character references are expanded; DOCTYPEs are skipped, so entity bombs (billion laughs)
 * expand to nothing. Map-style XML (`<string name="imei">`, plist `<key>imei</key><string>`) keys
 * values by their name.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, type Decoder, type DecoderOutput, type Entry, type Payload } from '../registry';
import { firstSignificant } from '../text';

const MAX_XML_NESTING = 64;
const NAME_ATTRS = ['name', 'key'];
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function unescapeXml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|lt|gt|amp|quot|apos);/g, (all, ref: string) => {
    if (ref[0] !== '#') return PREDEFINED[ref];
    const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : all;
  });
}

interface Element {
  name: string;
  path: string;
  keyPath: string[];
  text: string;
  childCounts: Map<string, number>;
  /** Key given by a `name`/`key` attribute, used for the element's own text. */
  namedKey: string | null;
  /** Text of the last `<key>` child (plist dictionaries). */
  pendingPlistKey: string | null;
  hadChildren: boolean;
}

const TAG_NAME = /^[A-Za-z_][\w.:-]*/;

function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon >= 0 ? name.slice(colon + 1) : name;
}

export function parseXml(text: string, ctx: DecodeContext): Entry[] | null {
  const entries: Entry[] = [];
  const root: Element = { name: '', path: '', keyPath: [], text: '', childCounts: new Map(), namedKey: null, pendingPlistKey: null, hadChildren: false };
  const stack: Element[] = [root];
  let elements = 0;
  let i = 0;
  const add = (e: Entry) => {
    if (entries.length < ctx.limits.maxFields) entries.push(e);
  };
  const closeElement = (el: Element) => {
    const parent = stack[stack.length - 1];
    const value = unescapeXml(el.text.trim());
    if (el.name === 'key' && parent) {
      parent.pendingPlistKey = value;
      return;
    }
    if (!value) return;
    let key = el.namedKey ?? localName(el.name);
    if (parent?.pendingPlistKey) {
      key = parent.pendingPlistKey;
      parent.pendingPlistKey = null;
    }
    const keyPath = el.namedKey || key !== localName(el.name) ? [...el.keyPath.slice(0, -1), key] : el.keyPath;
    add(makeEntry(`xml:${el.path}`, `xml:${parent?.path || '/'}`, ['xml'], key, keyPath, value));
  };
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const top = stack[stack.length - 1];
    if (lt < 0) {
      top.text += text.slice(i);
      break;
    }
    if (lt > i && !top.hadChildren) top.text += text.slice(i, lt);
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt + 4);
      i = end < 0 ? text.length : end + 3;
      continue;
    }
    if (text.startsWith('<![CDATA[', lt)) {
      const end = text.indexOf(']]>', lt + 9);
      top.text += text.slice(lt + 9, end < 0 ? text.length : end);
      i = end < 0 ? text.length : end + 3;
      continue;
    }
    if (text.startsWith('<!', lt) || text.startsWith('<?', lt)) {
      i = skipDeclaration(text, lt);
      continue;
    }
    const gt = text.indexOf('>', lt + 1);
    if (gt < 0) break;
    const inner = text.slice(lt + 1, gt);
    i = gt + 1;
    if (inner[0] === '/') {
      const name = inner.slice(1).trim();
      for (let s = stack.length - 1; s > 0; s--) {
        if (stack[s].name === name) {
          while (stack.length > s) closeElement(stack.pop()!);
          break;
        }
      }
      continue;
    }
    const nameMatch = TAG_NAME.exec(inner);
    if (!nameMatch) return elements ? entries : null;
    const name = nameMatch[0];
    elements++;
    top.hadChildren = true;
    top.text = top.text.trim() ? top.text : '';
    const n = (top.childCounts.get(name) ?? 0) + 1;
    top.childCounts.set(name, n);
    const path = `${top.path}/${name}${n > 1 ? `[${n}]` : ''}`;
    const keyPath = [...top.keyPath, localName(name)];
    const el: Element = { name, path, keyPath, text: '', childCounts: new Map(), namedKey: null, pendingPlistKey: null, hadChildren: false };
    for (const [attrName, rawValue] of readAttributes(inner, nameMatch[0].length)) {
      const attrValue = unescapeXml(rawValue);
      if (NAME_ATTRS.includes(attrName.toLowerCase()) && attrValue) el.namedKey = attrValue;
      if (attrName.startsWith('xmlns')) continue;
      add(makeEntry(`xml:${path}/@${attrName}`, `xml:${path}`, ['xml'], localName(attrName), [...keyPath, localName(attrName)], attrValue));
    }
    const selfClosing = inner.endsWith('/');
    if (selfClosing) continue;
    if (stack.length > MAX_XML_NESTING) {
      ctx.hit('maxDepth', `xml at ${ctx.at} nests deeper than ${MAX_XML_NESTING} elements; deeper values were not examined`);
      return entries;
    }
    stack.push(el);
  }
  while (stack.length > 1) closeElement(stack.pop()!);
  return elements ? entries : null;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** `name="value"` pairs of a tag, read in one linear pass (a regex here backtracks quadratically on hostile tags). */
function readAttributes(tag: string, from: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = from;
  const n = tag.length;
  while (i < n) {
    while (i < n && isSpace(tag.charCodeAt(i))) i++;
    const nameStart = i;
    while (i < n && !isSpace(tag.charCodeAt(i)) && tag[i] !== '=' && tag[i] !== '/' && tag[i] !== '>') i++;
    const name = tag.slice(nameStart, i);
    while (i < n && isSpace(tag.charCodeAt(i))) i++;
    if (!name || tag[i] !== '=') {
      i = Math.max(i, nameStart + 1);
      continue;
    }
    i++;
    while (i < n && isSpace(tag.charCodeAt(i))) i++;
    const quote = tag[i];
    if (quote !== '"' && quote !== "'") continue;
    const end = tag.indexOf(quote, i + 1);
    if (end < 0) break;
    out.push([name, tag.slice(i + 1, end)]);
    i = end + 1;
  }
  return out;
}

/** Skips `<?...?>` and `<!DOCTYPE ... [ ... ]>` (internal subsets are ignored, never expanded). */
function skipDeclaration(text: string, at: number): number {
  if (text.startsWith('<?', at)) {
    const end = text.indexOf('?>', at + 2);
    return end < 0 ? text.length : end + 2;
  }
  let depth = 0;
  for (let j = at + 2; j < text.length; j++) {
    const c = text[j];
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    else if (c === '>' && depth === 0) return j + 1;
  }
  return text.length;
}

export const xmlDecoder: Decoder = {
  type: 'xml',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string' || firstSignificant(input) !== 0x3c) return null;
    const trimmed = input.trimEnd();
    if (!trimmed.endsWith('>')) return null;
    const entries = parseXml(trimmed, ctx);
    return entries ? fieldsOutput(entries) : null;
  },
  explain: () => 'an XML document; element text and attributes were read',
};
