/**
 * Why: everything the dashboard shows was captured from a phone and is hostile text. These helpers
 * are the only way views build DOM: children become text nodes, attributes are set one by one, and
 * there is no path from data to HTML parsing (no innerHTML anywhere in the page).
 */

/** Attributes views may set from code; anything else is a programming error, not data. */
const ALLOWED_ATTRS = new Set([
  'class', 'id', 'href', 'title', 'type', 'name', 'value', 'placeholder', 'for', 'role', 'rows', 'cols',
  'colspan', 'spellcheck', 'alt', 'src', 'width', 'height', 'scope', 'disabled', 'checked', 'selected',
  'aria-label', 'aria-live', 'aria-pressed', 'aria-busy', 'aria-current', 'tabindex', 'download', 'rel', 'target',
]);

/**
 * el('td', { class: 'x', dataset: { flowId: 3 }, onclick: fn }, 'text', childNode, [more]).
 * Strings and numbers become text nodes; null/undefined/false children are skipped.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  append(node, children);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Same as el() for SVG elements (attributes are not filtered: chart code sets geometry only). */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.setAttribute('class', String(v));
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function applyProps(node, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = String(dv);
    } else if (k.startsWith('on') && typeof v === 'function') {
      node.addEventListener(k.slice(2), v);
    } else if (k === 'text') {
      node.textContent = String(v);
    } else if (ALLOWED_ATTRS.has(k)) {
      if (k === 'href' && !isSafeHref(String(v))) throw new Error(`unsafe href ${String(v).slice(0, 40)}`);
      if (k === 'src' && !isSafeSrc(String(v))) throw new Error('unsafe src');
      node.setAttribute(k, v === true ? '' : String(v));
    } else {
      throw new Error(`attribute ${k} not allowed`);
    }
  }
}

/** Links we build point inside the page or to http(s) URLs our own server handed us. */
export function isSafeHref(href) {
  return href.startsWith('#') || href.startsWith('/') || /^https?:\/\//i.test(href);
}

function isSafeSrc(src) {
  return /^data:image\/(svg\+xml|png|gif|jpeg);base64,[A-Za-z0-9+/=]+$/.test(src) || src.startsWith('/');
}

export function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/**
 * Text with every occurrence of the needles wrapped in <mark>, built by splitting text nodes.
 * needles: [{ text, className, title }]; longer needles win where they overlap; matching ignores case.
 */
export function highlighted(text, needles) {
  const frag = document.createDocumentFragment();
  const usable = (needles || []).filter((n) => n && n.text && n.text.length >= 2);
  if (!usable.length || !text) {
    frag.append(document.createTextNode(text || ''));
    return frag;
  }
  const hay = text.toLowerCase();
  const spans = [];
  for (const n of usable) {
    const needle = n.text.toLowerCase();
    let from = 0;
    while (spans.length < 5000) {
      const at = hay.indexOf(needle, from);
      if (at < 0) break;
      spans.push({ start: at, end: at + needle.length, n });
      from = at + needle.length;
    }
  }
  spans.sort((a, b) => a.start - b.start || b.end - b.start - (a.end - a.start));
  let pos = 0;
  for (const s of spans) {
    if (s.start < pos) continue;
    if (s.start > pos) frag.append(document.createTextNode(text.slice(pos, s.start)));
    const mark = document.createElement('mark');
    mark.className = s.n.className || 'hit';
    if (s.n.title) mark.title = s.n.title;
    mark.textContent = text.slice(s.start, s.end);
    frag.append(mark);
    pos = s.end;
  }
  if (pos < text.length) frag.append(document.createTextNode(text.slice(pos)));
  return frag;
}

/** A <select> whose options come from [value, label] pairs; '' means "any". */
export function select(name, label, options, current, onchange) {
  const sel = el('select', { name, 'aria-label': label, onchange: (e) => onchange(e.target.value) },
    options.map(([value, text]) => {
      const o = el('option', { value }, text);
      if (String(value) === String(current ?? '')) o.selected = true;
      return o;
    }));
  return sel;
}
