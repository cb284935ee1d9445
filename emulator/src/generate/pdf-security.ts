// The PDF standard security handler, revision 3 (RC4, 128-bit key), as specified in ISO 32000-1
// §7.6.3 (algorithms 2, 3, 5). pdf-lib cannot encrypt, and RC4 is only in OpenSSL's legacy
// provider (absent from Node 24 by default), so RC4 is written out here; MD5 comes from node:crypto.
import { createHash } from "node:crypto";

const PADDING = Buffer.from("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a", "hex");
const KEY_BYTES = 16;

export function rc4(key: Buffer, data: Buffer): Buffer {
  const s = new Uint8Array(256);
  for (let i = 0; i < 256; i++) s[i] = i;
  let j = 0;
  for (let i = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff;
    const tmp = s[i]!;
    s[i] = s[j]!;
    s[j] = tmp;
  }
  const out = Buffer.alloc(data.length);
  let i = 0;
  j = 0;
  for (let k = 0; k < data.length; k++) {
    i = (i + 1) & 0xff;
    j = (j + s[i]!) & 0xff;
    const tmp = s[i]!;
    s[i] = s[j]!;
    s[j] = tmp;
    out[k] = data[k]! ^ s[(s[i]! + s[j]!) & 0xff]!;
  }
  return out;
}

const md5 = (...parts: Buffer[]): Buffer => {
  const hash = createHash("md5");
  for (const part of parts) hash.update(part);
  return hash.digest();
};

function pad(password: string): Buffer {
  return Buffer.concat([Buffer.from(password, "latin1"), PADDING]).subarray(0, 32);
}

/** RC4 19 more times with the key XOR-ed with the round number (revision 3). */
function rc4Rounds(key: Buffer, data: Buffer): Buffer {
  let out = rc4(key, data);
  for (let round = 1; round <= 19; round++) {
    out = rc4(Buffer.from(key.map((b) => b ^ round)), out);
  }
  return out;
}

export interface StandardSecurity {
  /** The /Encrypt dictionary body. */
  encryptDict: string;
  /** Encrypts a string or stream of object `objectNumber` (generation 0). */
  encrypt(objectNumber: number, data: Buffer): Buffer;
}

export function standardSecurity(opts: {
  userPassword: string;
  ownerPassword: string;
  permissions: number;
  fileId: Buffer;
}): StandardSecurity {
  // Algorithm 3: the O entry.
  let ownerKey = md5(pad(opts.ownerPassword));
  for (let i = 0; i < 50; i++) ownerKey = md5(ownerKey);
  const o = rc4Rounds(ownerKey.subarray(0, KEY_BYTES), pad(opts.userPassword));
  // Algorithm 2: the file key.
  const p = Buffer.alloc(4);
  p.writeInt32LE(opts.permissions);
  let key = md5(pad(opts.userPassword), o, p, opts.fileId);
  for (let i = 0; i < 50; i++) key = md5(key.subarray(0, KEY_BYTES));
  key = key.subarray(0, KEY_BYTES);
  // Algorithm 5: the U entry (16 significant bytes, padded to 32).
  const u = Buffer.concat([rc4Rounds(key, md5(PADDING, opts.fileId)), Buffer.alloc(16)]);
  return {
    encryptDict: `<< /Filter /Standard /V 2 /R 3 /Length 128 /O <${o.toString("hex")}> /U <${u.toString("hex")}> /P ${opts.permissions} >>`,
    encrypt(objectNumber, data) {
      const salt = Buffer.from([objectNumber & 0xff, (objectNumber >> 8) & 0xff, (objectNumber >> 16) & 0xff, 0, 0]);
      return rc4(md5(key, salt).subarray(0, Math.min(KEY_BYTES + 5, 16)), data);
    },
  };
}
