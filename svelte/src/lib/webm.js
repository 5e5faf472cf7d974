// A minimal WebM writer for one video track of encoded frames (WebCodecs' VP8 or VP9 chunks):
// EBML header, then a Segment of SeekHead, Info, Tracks, one Cluster per key frame and Cues, all
// sized up front since the whole video is in memory. Timestamps are in milliseconds.

/** @typedef {{data: Uint8Array, timestamp: number, key: boolean}} Block  timestamp in ms */

const EBML = 0x1a45dfa3;
const SEGMENT = 0x18538067;
const SEEK_HEAD = 0x114d9b74;
const SEEK = 0x4dbb;
const INFO = 0x1549a966;
const TRACKS = 0x1654ae6b;
const CLUSTER = 0x1f43b675;
const CUES = 0x1c53bb6b;
const MAX_RELATIVE = 30_000; // a block's timestamp is an int16 offset from its cluster's

/** An element ID's bytes (IDs carry their own length marker). @param {number} id */
function idBytes(id) {
  const out = [];
  for (let v = id; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return out;
}

/** EBML variable-size integer for an element's data size. @param {number} size */
function sizeBytes(size) {
  let length = 1;
  while (size >= 2 ** (7 * length) - 1) length++;
  const out = [];
  let v = size;
  for (let i = 0; i < length; i++, v = Math.floor(v / 256)) out.unshift(v % 256);
  out[0] |= 1 << (8 - length);
  return out;
}

/** @param {(Uint8Array | number[])[]} parts */
function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** @param {number} id @param {(Uint8Array | number[])[]} children */
function element(id, ...children) {
  const body = concat(children);
  return concat([idBytes(id), sizeBytes(body.length), body]);
}

/** An unsigned integer element, big-endian, in `width` bytes (default: as few as it needs). */
function uint(id, value, width = 0) {
  const bytes = [];
  for (let v = value; v > 0 || bytes.length === 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  while (bytes.length < width) bytes.unshift(0);
  return element(id, bytes);
}

function float(id, value) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, value);
  return element(id, bytes);
}

function string(id, text) {
  return element(id, Array.from(text, (c) => c.charCodeAt(0) & 0x7f));
}

/**
 * The WebM file of one video track.
 * @param {{codec: "V_VP8" | "V_VP9", width: number, height: number, duration: number, blocks: Block[]}} video
 *   duration in ms; blocks in presentation order, the first a key frame
 * @returns {Uint8Array<ArrayBuffer>[]} the file's bytes in parts (for a Blob, without copying the frames again)
 */
export function webm({ codec, width, height, duration, blocks }) {
  const header = element(
    EBML,
    uint(0x4286, 1), // EBMLVersion
    uint(0x42f7, 1), // EBMLReadVersion
    uint(0x42f2, 4), // EBMLMaxIDLength
    uint(0x42f3, 8), // EBMLMaxSizeLength
    string(0x4282, "webm"), // DocType
    uint(0x4287, 4), // DocTypeVersion
    uint(0x4285, 2), // DocTypeReadVersion
  );
  const info = element(
    INFO,
    uint(0x2ad7b1, 1_000_000), // TimestampScale: 1 ms
    float(0x4489, duration),
    string(0x4d80, "understanding-rl-vision"), // MuxingApp
    string(0x5741, "understanding-rl-vision"), // WritingApp
  );
  const tracks = element(
    TRACKS,
    element(
      0xae, // TrackEntry
      uint(0xd7, 1), // TrackNumber
      uint(0x73c5, 1), // TrackUID
      uint(0x83, 1), // TrackType: video
      uint(0x9c, 0), // FlagLacing
      string(0x86, codec), // CodecID
      element(0xe0, uint(0xb0, width), uint(0xba, height)), // Video: PixelWidth, PixelHeight
    ),
  );

  // A cluster starts at every key frame (and before a block would be too far from its start).
  /** @type {{time: number, blocks: Uint8Array[]}[]} */
  const clusters = [];
  for (const block of blocks) {
    let cluster = clusters.at(-1);
    if (!cluster || block.key || block.timestamp - cluster.time > MAX_RELATIVE) {
      cluster = { time: block.timestamp, blocks: [] };
      clusters.push(cluster);
    }
    const relative = block.timestamp - cluster.time;
    // SimpleBlock: track number (vint), int16 relative timestamp, flags (0x80: key frame), frame
    const head = [0x81, (relative >> 8) & 0xff, relative & 0xff, block.key ? 0x80 : 0];
    cluster.blocks.push(element(0xa3, head, block.data));
  }
  const clusterBytes = clusters.map((c) => element(CLUSTER, uint(0xe7, c.time), ...c.blocks));

  // Positions are relative to the Segment's data; SeekPosition and CueClusterPosition are
  // written in 8 bytes so that the SeekHead's size does not depend on them.
  const seekHead = (/** @type {number[]} */ [infoAt, tracksAt, cuesAt]) =>
    element(
      SEEK_HEAD,
      ...[[INFO, infoAt], [TRACKS, tracksAt], [CUES, cuesAt]].map(([id, at]) =>
        element(SEEK, element(0x53ab, idBytes(id)), uint(0x53ac, at, 8)),
      ),
    );
  const seekLength = seekHead([0, 0, 0]).length;
  const infoAt = seekLength;
  const tracksAt = infoAt + info.length;
  let at = tracksAt + tracks.length;
  const cuePoints = clusters.map((cluster, i) => {
    const point = element(
      0xbb, // CuePoint
      uint(0xb3, cluster.time), // CueTime
      element(0xb7, uint(0xf7, 1), uint(0xf1, at, 8)), // CueTrackPositions: CueTrack, CueClusterPosition
    );
    at += clusterBytes[i].length;
    return point;
  });
  const cues = element(CUES, ...cuePoints);
  const body = [seekHead([infoAt, tracksAt, at]), info, tracks, ...clusterBytes, cues];
  const size = body.reduce((n, part) => n + part.length, 0);
  return [header, concat([idBytes(SEGMENT), sizeBytes(size)]), ...body];
}
