// Images (sprite sheets, thumbnails, popups) loaded once and shared. `ready(url)` is reactive:
// an effect that asks for an image still loading runs again when it arrives.

const cache = new Map(); // url -> {image, loaded, failed}
const version = $state({ n: 0 });

/** @param {string} url @returns {HTMLImageElement | null} the image once decoded, else null */
export function ready(url) {
  version.n; // a dependency: loading bumps it
  const entry = load(url);
  return entry.loaded ? entry.image : null;
}

/** @param {string} url @returns {Promise<HTMLImageElement>} */
export function loadImage(url) {
  const entry = load(url);
  return entry.promise;
}

function load(url) {
  let entry = cache.get(url);
  if (!entry) {
    const image = new Image();
    image.decoding = "async";
    entry = { image, loaded: false, failed: false, promise: null };
    entry.promise = new Promise((resolve, reject) => {
      image.onload = () => {
        entry.loaded = true;
        version.n++;
        resolve(image);
      };
      image.onerror = () => {
        entry.failed = true;
        reject(new Error(`could not load ${url}`));
      };
    });
    entry.promise.catch(() => {}); // callers that care attach their own handlers
    image.src = url;
    cache.set(url, entry);
  }
  return entry;
}
