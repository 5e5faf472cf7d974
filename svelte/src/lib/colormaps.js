// Colour tables for heatmaps, computed here (no dependency) in OKLab, a colour space in which
// equal distances look about equally different. Each table runs lightness linearly in OKLab, so
// equal steps of the value look like equal steps of colour:
//   sequential  for non-negative maps: dark violet through red and orange to pale yellow
//               (hue turning one way, chroma as high as sRGB allows), like inferno;
//   diverging   for signed maps: blue for negative, near white at zero, red for positive,
//               lightness falling symmetrically from the middle to the ends.
// Colours outside sRGB keep their lightness and hue and lose chroma until they fit.

/** @typedef {{name: string, signed: boolean, rgb: Uint8Array}} ColorTable  256 colours, rgb[3 * i + c] */

export const TABLE_SIZE = 256;

/** OKLab (L, a, b) -> linear sRGB [r, g, b] (may fall outside 0..1). */
function oklabToLinear(L, a, b) {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  return [
    4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
    -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
    -0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s,
  ];
}

/** linear light -> an sRGB byte */
function encode(c) {
  const v = c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055;
  return Math.round(Math.min(Math.max(v, 0), 1) * 255);
}

const inGamut = (rgb) => rgb.every((c) => c >= -1e-4 && c <= 1 + 1e-4);

/** The sRGB bytes of OKLCh (lightness, chroma, hue in degrees), chroma reduced into the gamut. */
export function oklch(L, C, hue) {
  const [ca, sa] = [Math.cos((hue * Math.PI) / 180), Math.sin((hue * Math.PI) / 180)];
  let linear = oklabToLinear(L, C * ca, C * sa);
  if (!inGamut(linear)) {
    let [lo, hi] = [0, C];
    for (let i = 0; i < 24; i++) {
      const mid = (lo + hi) / 2;
      if (inGamut(oklabToLinear(L, mid * ca, mid * sa))) lo = mid;
      else hi = mid;
    }
    linear = oklabToLinear(L, lo * ca, lo * sa);
  }
  return linear.map(encode);
}

/** @param {(t: number) => number[]} color t in 0..1 -> [r, g, b] */
function tabulate(color) {
  const rgb = new Uint8Array(3 * TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) rgb.set(color(i / (TABLE_SIZE - 1)), 3 * i);
  return rgb;
}

/** @type {ColorTable} */
export const SEQUENTIAL = {
  name: "sequential",
  signed: false,
  rgb: tabulate((t) => oklch(0.2 + 0.76 * t, 0.06 + 0.16 * Math.sin(Math.PI * (0.2 + 0.6 * t)), 305 + 165 * t)),
};

/** @type {ColorTable} */
export const DIVERGING = {
  name: "diverging",
  signed: true,
  // t = 0 is the most negative, 0.5 zero, 1 the most positive
  rgb: tabulate((t) => {
    const d = Math.abs(2 * t - 1);
    return oklch(0.96 - 0.44 * d, 0.17 * d, t < 0.5 ? 255 : 28);
  }),
};

/** The table for a method's maps. @param {boolean} signed */
export const tableFor = (signed) => (signed ? DIVERGING : SEQUENTIAL);

/** [r, g, b] of entry i. @param {ColorTable} table @param {number} i */
export const entry = (table, i) => Array.from(table.rgb.subarray(3 * i, 3 * i + 3));

/** A CSS linear-gradient (left to right) through `stops` evenly spaced entries of a table. */
export function cssGradient(table, stops = 17) {
  const parts = [];
  for (let s = 0; s < stops; s++) {
    const i = Math.round((s * (TABLE_SIZE - 1)) / (stops - 1));
    parts.push(`rgb(${entry(table, i).join(" ")}) ${((100 * s) / (stops - 1)).toFixed(1)}%`);
  }
  return `linear-gradient(to right, ${parts.join(", ")})`;
}

/** A gradient from transparent to one colour: the scale of a single-colour overlay. */
export function cssRamp(color) {
  return `linear-gradient(to right, rgb(${color.join(" ")} / 0), rgb(${color.join(" ")}))`;
}
