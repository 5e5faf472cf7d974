// The page's side of the data contract (understanding_rl_vision/contract/schema.py): load a
// payload through a <script> tag, which works from file:// where fetch does not, and decode
// its arrays exactly as export/reader.py does: base85, inflate if deflated, little-endian
// view, times scale.

import { DTYPES, RECEIVER } from "./contract.js";

const ARRAY_TYPES = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  int32: Int32Array,
  float32: Float32Array,
};
const untyped = DTYPES.filter((dtype) => !(dtype in ARRAY_TYPES));
if (untyped.length) throw new Error(`the page cannot decode dtypes ${untyped}`);

// RFC 1924's alphabet, as Python's base64.b85encode writes it.
const BASE85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE85.length; i++) DIGIT[BASE85.charCodeAt(i)] = i;

/** base85 text -> bytes: 5 characters per 4 bytes; a last group of n + 1 characters holds n
 * bytes (decoded as if padded with the highest digit, as Python does). */
export function base85Bytes(text) {
  const groups = Math.floor(text.length / 5);
  const rest = text.length % 5;
  if (rest === 1) throw new Error("corrupt base85 data (length)");
  const bytes = new Uint8Array(groups * 4 + (rest ? rest - 1 : 0));
  const digit = (i) => {
    const code = text.charCodeAt(i);
    const d = code < 128 ? DIGIT[code] : -1;
    if (d < 0) throw new Error(`corrupt base85 data (character ${JSON.stringify(text[i])})`);
    return d;
  };
  const value = (start, count) => {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 85 + (j < count ? digit(start + j) : 84);
    if (v > 0xffffffff) throw new Error("corrupt base85 data (overflow)");
    return v;
  };
  let o = 0;
  for (let g = 0; g < groups; g++) {
    const v = value(g * 5, 5);
    bytes[o++] = v >>> 24;
    bytes[o++] = (v >>> 16) & 255;
    bytes[o++] = (v >>> 8) & 255;
    bytes[o++] = v & 255;
  }
  if (rest) {
    const v = value(groups * 5, rest);
    for (let j = 0; j < rest - 1; j++) bytes[o++] = (v >>> (24 - 8 * j)) & 255;
  }
  return bytes;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The stored integers (or floats) of an encoded array, and its scale. */
export async function decodeStored(encoded) {
  const Type = ARRAY_TYPES[encoded.dtype];
  if (!Type) throw new Error(`unknown dtype ${encoded.dtype}`);
  let bytes = base85Bytes(encoded.data);
  if (encoded.compression === "deflate") bytes = await inflate(bytes);
  const count = encoded.shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== count * Type.BYTES_PER_ELEMENT) {
    throw new Error(`array has ${bytes.byteLength} bytes, shape ${encoded.shape} needs more`);
  }
  // Every platform a browser runs on is little-endian, the wire's byte order.
  return { stored: new Type(bytes.buffer, bytes.byteOffset, count), scale: encoded.scale };
}

/** Values as the page uses them: quantised maps become floats (stored x scale). */
export async function decodeArray(encoded) {
  const { stored, scale } = await decodeStored(encoded);
  if (encoded.dtype === "float32" && scale === 1) return stored;
  const values = new Float32Array(stored.length);
  for (let i = 0; i < stored.length; i++) values[i] = stored[i] * scale;
  return values;
}

const waiting = new Map();

/** Route window.__rlv_receive(key, payload) calls to the promises of loadPayload. */
export function installReceiver(target = window) {
  target[RECEIVER] = (key, payload) => {
    const entry = waiting.get(key);
    if (entry) {
      entry.received = true;
      entry.resolve(payload);
    }
  };
}

/** Load data/<key>.js once; resolves with its JSON payload (arrays still encoded). */
export function loadPayload(key, base = "data/") {
  if (!waiting.has(key)) {
    let resolve, reject;
    const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    const entry = { promise, resolve, received: false };
    waiting.set(key, entry);
    const script = document.createElement("script");
    script.src = `${base}${key}.js`;
    script.onload = () => {
      script.remove(); // it has run; the tag is no longer needed
      if (!entry.received) {
        if (waiting.get(key) === entry) waiting.delete(key);
        reject(new Error(`${script.src} did not deliver payload ${key}`));
      }
    };
    script.onerror = () => {
      waiting.delete(key); // a later call may try again
      script.remove();
      reject(new Error(`could not load ${script.src}`));
    };
    document.head.appendChild(script);
  }
  return waiting.get(key).promise;
}

/** Drop a loaded payload's JSON, so that memory is held only by what the caller decoded; a
 * later loadPayload(key) adds the script again. */
export function forgetPayload(key) {
  waiting.delete(key);
}
