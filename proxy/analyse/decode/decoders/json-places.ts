/**
 * Places of JSON values shared across documents. A phone sends the same document shape in every
 * request body (`$.event`, `$.device.model`, `$.items[3]`): each place's path, key and key path
 * are built once and handed to every later document read at the same position, instead of a path
 * join and a key-path array per value per flow. Shared strings are also hashed once, for
 * detection's maps. Only positions that are themselves shared (the request body) have places;
 * the places are bounded, hold copies (never a slice of a body) and are never changed once made:
 * the fields that carry them are read-only downstream.
 */
import { ownCopy } from '../../../own-copy';

/** One place in a document shape: a container, or a value inside one. */
export interface Place {
  /** Full path, e.g. `body>json:$.device.model`. */
  readonly path: string;
  /** The key the value is found under (an array element: its array's key), or null at the root. */
  readonly key: string | null;
  readonly keyPath: string[];
  /** Members by key (objects) and elements by index (arrays), made as documents use them. */
  members: Map<string, Place> | undefined;
  elements: Place[] | undefined;
}

/** The root place of a document at a shared position, with the chain all its values carry. */
export interface PlaceRoot {
  place: Place;
  chain: string[];
}

/** Where a document sits (a Position). */
interface Base {
  keyPath: string[];
  chain: string[];
}

/** Positions whose documents have shared places (module constants that live as long as the process). */
const SHARED_POSITIONS = new WeakSet<Base>();

/** Marks a Position that never changes and lives for the process: documents read there share places. */
export function sharePlacesAt<T extends Base>(pos: T): T {
  SHARED_POSITIONS.add(pos);
  return pos;
}

/** Places all roots together may hold; when full, they start over. */
const MAX_PLACES = 4096;
/** New places one document may add (a batch of unique keys reads as before, without filling them). */
const MAX_NEW_PER_DOCUMENT = 64;
/** Array elements past this index have no place of their own. */
const MAX_ELEMENT_PLACES = 32;
/** Keys longer than this get no place (a shape's keys are short). */
const MAX_KEY_LENGTH = 64;

let roots = new Map<Base, Map<string, PlaceRoot>>();
let places = 0;
/** New places the current document may still add. */
let newLeft = 0;

/** The root place for a `type` document at `pos`, or undefined when `pos` is not shared. Starts a document. */
export function rootPlace(pos: Base, type: string, rootPath: string): PlaceRoot | undefined {
  if (!SHARED_POSITIONS.has(pos)) return undefined;
  if (places >= MAX_PLACES) {
    roots = new Map();
    places = 0;
  }
  newLeft = MAX_NEW_PER_DOCUMENT;
  let byType = roots.get(pos);
  if (!byType) roots.set(pos, (byType = new Map()));
  let root = byType.get(type);
  if (!root) {
    places++;
    root = { place: { path: rootPath, key: null, keyPath: pos.keyPath, members: undefined, elements: undefined }, chain: [...pos.chain, type] };
    byType.set(type, root);
  }
  return root;
}

/** The place of member `key` of `parent` (its path suffix made by `suffix`), or undefined when no more places may be made. */
export function memberPlace(parent: Place, key: string, suffix: (key: string) => string): Place | undefined {
  let place = parent.members?.get(key);
  if (place !== undefined) return place;
  if (newLeft <= 0 || places >= MAX_PLACES || key.length > MAX_KEY_LENGTH) return undefined;
  newLeft--;
  places++;
  const own = ownCopy(key);
  place = { path: parent.path + suffix(own), key: own, keyPath: [...parent.keyPath, own], members: undefined, elements: undefined };
  (parent.members ??= new Map()).set(own, place);
  return place;
}

/** The place of element `index` of array `parent` (its path suffix given), or undefined past the shared ones. */
export function elementPlace(parent: Place, index: number, suffix: string): Place | undefined {
  if (index >= MAX_ELEMENT_PLACES) return undefined;
  let place = parent.elements?.[index];
  if (place !== undefined) return place;
  if (newLeft <= 0 || places >= MAX_PLACES) return undefined;
  newLeft--;
  places++;
  const key = parent.keyPath.length ? parent.keyPath[parent.keyPath.length - 1]! : null;
  place = { path: parent.path + suffix, key, keyPath: parent.keyPath, members: undefined, elements: undefined };
  (parent.elements ??= [])[index] = place;
  return place;
}
