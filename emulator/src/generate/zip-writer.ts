// A minimal ZIP writer (stored + deflate, no ZIP64) for the DOCX fixtures whose entries cannot be
// held in memory: a zip bomb's document.xml is produced as a raw deflate stream directly, with
// its CRC and sizes, so the 1.2 GB of XML never exists as a buffer. Fixed timestamps keep the
// bytes deterministic.
import { crc32, deflateRawSync } from "node:zlib";

export interface ZipEntry {
  name: string;
  /** Raw deflate data. */
  compressed: Buffer;
  crc: number;
  uncompressedSize: number;
}

// 1980-01-01 00:00 in DOS format: date (1 << 5) | 1, time 0.
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const DOS_TIME = 0;

export function deflatedEntry(name: string, data: Buffer | string): ZipEntry {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return { name, compressed: deflateRawSync(bytes, { level: 9 }), crc: crc32(bytes), uncompressedSize: bytes.length };
}

export function writeZip(entries: readonly ZipEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    if (entry.uncompressedSize > 0xffffffff || entry.compressed.length > 0xffffffff) {
      throw new Error(`zip entry ${entry.name} needs ZIP64, which this writer does not do`);
    }
    const name = Buffer.from(entry.name, "utf8");
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(entry.crc >>> 0, 14);
    local.writeUInt32LE(entry.compressed.length, 18);
    local.writeUInt32LE(entry.uncompressedSize, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4); // version made by
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(0x0800, 8);
    dir.writeUInt16LE(8, 10);
    dir.writeUInt16LE(DOS_TIME, 12);
    dir.writeUInt16LE(DOS_DATE, 14);
    dir.writeUInt32LE(entry.crc >>> 0, 16);
    dir.writeUInt32LE(entry.compressed.length, 20);
    dir.writeUInt32LE(entry.uncompressedSize, 24);
    dir.writeUInt16LE(name.length, 28);
    dir.writeUInt32LE(offset, 42);
    central.push(dir, name);
    parts.push(local, name, entry.compressed);
    offset += local.length + name.length + entry.compressed.length;
  }
  const centralSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, ...central, end]);
}

/** LSB-first bit packer for a deflate stream. */
class BitWriter {
  private bytes: Buffer;
  private length = 0;
  private acc = 0;
  private bits = 0;
  constructor(capacity: number) {
    this.bytes = Buffer.alloc(capacity);
  }
  write(value: number, count: number): void {
    this.acc |= value << this.bits;
    this.bits += count;
    while (this.bits >= 8) {
      this.bytes[this.length++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.bits -= 8;
    }
  }
  /** Huffman codes are defined MSB-first: reverse before packing. */
  writeCode(code: number, count: number): void {
    let reversed = 0;
    for (let i = 0; i < count; i++) reversed |= ((code >> i) & 1) << (count - 1 - i);
    this.write(reversed, count);
  }
  finish(): Buffer {
    if (this.bits > 0) this.bytes[this.length++] = this.acc & 0xff;
    return this.bytes.subarray(0, this.length);
  }
}

function writeFixedLiteral(out: BitWriter, byte: number): void {
  if (byte < 144) out.writeCode(0x30 + byte, 8);
  else out.writeCode(0x190 + byte - 144, 9);
}

/**
 * A zip entry whose content is `prefix + fill × (1 + 258·k) + suffix`, at least `minBytes` long.
 * The run is one dynamic-Huffman deflate block whose only codes are "length 258" and "end of
 * block" (1 bit each) and "distance 1" (1 bit): 2 bits per 258 bytes, deflate's maximum ratio
 * (~1030:1). Prefix and suffix go in fixed-Huffman blocks around it.
 */
export function repeatedByteEntry(
  name: string,
  prefix: string,
  fill: number,
  suffix: string,
  minBytes: number,
): ZipEntry {
  const head = Buffer.from(prefix, "utf8");
  const tail = Buffer.from(suffix, "utf8");
  const matches = Math.max(0, Math.ceil((minBytes - head.length - tail.length - 1) / 258));
  const fillLength = 1 + 258 * matches;
  const out = new BitWriter(Math.ceil(matches / 4) + (head.length + tail.length) * 2 + 64);
  // Block 1 (fixed Huffman): the prefix and the first fill byte as literals.
  out.write(0, 1); // not final
  out.write(1, 2); // BTYPE=01
  for (const byte of head) writeFixedLiteral(out, byte);
  writeFixedLiteral(out, fill);
  out.writeCode(0, 7); // end of block (256)
  // Block 2 (dynamic Huffman): the run.
  out.write(0, 1);
  out.write(2, 2); // BTYPE=10
  out.write(286 - 257, 5); // HLIT: literal/length codes 0..285
  out.write(1 - 1, 5); // HDIST: one distance code
  out.write(18 - 4, 4); // HCLEN: code-length code lengths given for the first 18 in RFC order
  // RFC 1951 order 16,17,18,0,8,7,9,6,10,5,11,4,12,3,13,2,14,1: only 18 (index 2) and 1 (index 17).
  for (let i = 0; i < 18; i++) out.write(i === 2 || i === 17 ? 1 : 0, 3);
  // Code-length code: symbol 1 → "0", symbol 18 → "1" (canonical order).
  const zeros = (count: number): void => {
    out.write(1, 1);
    out.write(count - 11, 7);
  };
  zeros(138);
  zeros(118); // literals 0..255 unused
  out.write(0, 1); // 256 (end of block): length 1
  zeros(28); // 257..284 unused
  out.write(0, 1); // 285 (length 258): length 1
  out.write(0, 1); // distance code 0: length 1
  // Lit/len code: 256 → "0", 285 → "1"; distance 0 → "0".
  for (let i = 0; i < matches; i++) out.write(0b01, 2);
  out.write(0, 1); // end of block
  // Block 3 (fixed Huffman, final): the suffix.
  out.write(1, 1);
  out.write(1, 2);
  for (const byte of tail) writeFixedLiteral(out, byte);
  out.writeCode(0, 7);
  // CRC of the run without reading 1.2 GB: CRCs of 1 MiB chunks are combined algebraically.
  const chunk = Buffer.alloc(1 << 20, fill);
  const chunkCrc = crc32(chunk);
  let crc = crc32(head);
  for (let left = fillLength; left > 0; left -= chunk.length) {
    crc = left >= chunk.length ? crc32Combine(crc, chunkCrc, chunk.length) : crc32(chunk.subarray(0, left), crc);
  }
  crc = crc32(tail, crc);
  return { name, compressed: out.finish(), crc, uncompressedSize: head.length + fillLength + tail.length };
}

// crc32_combine from zlib (crc32.c): CRC(A‖B) from CRC(A), CRC(B) and len(B), by multiplying
// polynomials modulo the CRC-32 polynomial (reflected), so no byte of A or B is read again.
const POLY = 0xedb88320;

function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) mod p for k = 0..31. */
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multModP(X2N[k - 1]!, X2N[k - 1]!));

/** x^(n·2^k) mod p. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000;
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

export function crc32Combine(crc1: number, crc2: number, length2: number): number {
  return (multModP(x2nModP(length2, 3), crc1 >>> 0) ^ (crc2 >>> 0)) >>> 0;
}
