// Imported by pdf.ts before pdf-parse. pdf.js in Node takes DOMMatrix (and ImageData, Path2D) from
// the native @napi-rs/canvas addon, and builds one DOMMatrix as its module loads. Extraction children
// run without `--allow-addons` (a native addon runs outside Node's permission model), so the addon
// cannot load there. Text extraction never renders: an identity matrix with no methods satisfies the
// module load, and any rendering path that wanted a real one fails loudly instead of silently.
class InertDOMMatrix {
  a = 1;
  b = 0;
  c = 0;
  d = 1;
  e = 0;
  f = 0;
}

const g = globalThis as { DOMMatrix?: unknown };
g.DOMMatrix ??= InertDOMMatrix;
