// A valid RGB PNG built by hand (signature, IHDR, zlib IDAT, IEND, CRC-32 per chunk): a pattern
// of coloured blocks from the seed, so different seeds give different images and checksums.
import { crc32, deflateSync } from "node:zlib";
import { createRng } from "./prng.ts";

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0);
  return Buffer.concat([head, data, crc]);
}

export function buildPng(width: number, height: number, seed: number): Buffer {
  const rng = createRng(seed);
  const block = 8;
  const palette = Array.from({ length: 6 }, () => [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)] as const);
  const cols = Math.ceil(width / block);
  const cells = Array.from({ length: Math.ceil(height / block) * cols }, () => rng.int(0, palette.length - 1));
  const stride = width * 3 + 1;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    pixels[y * stride] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const colour = palette[cells[Math.floor(y / block) * cols + Math.floor(x / block)]!]!;
      const at = y * stride + 1 + x * 3;
      pixels[at] = colour[0];
      pixels[at + 1] = colour[1];
      pixels[at + 2] = colour[2];
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(pixels, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
