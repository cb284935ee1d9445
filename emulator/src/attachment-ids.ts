// Attachment ids as Gmail hands them out: about 319 characters, starting "ANGjdJ", and different
// on every fetch of the same message and part (gmail-real-samples/
// messages_get_full_multipart_mixed_attachments_2024-10.json vs …_refetch.json), while any id
// handed out stays valid. Ours carry the message id and part id under an HMAC, so a forged or
// foreign id is refused; a per-fetch nonce, folded over the whole token, makes each fetch's ids
// differ from the first character after the prefix on, as Gmail's do.
import { createHmac, randomBytes } from "node:crypto";

const PREFIX = "ANGjdJ";
const NONCE = 8;
const MAC = 18;
/** Token bytes: 234 → 312 base64url characters, 318 with the prefix (Gmail's: ~319). Longer only for a very deep part. */
const TOKEN_BYTES = 234;
/** MAC, then the ref's length in two bytes, then the ref ("msgId/partId"). */
const REF_AT = MAC + 2;

export interface AttachmentIds {
  /** An id for one part; `nonce` (8 bytes) makes it differ per fetch. Without a nonce: the stable id. */
  encode(msgId: string, partId: string, nonce?: Buffer): string;
  /** The encoder of one part (its HMAC computed once), for serving the same part many times. */
  encoder(msgId: string, partId: string): (nonce: Buffer | undefined) => string;
  /** A fresh nonce per fetch (a counter under a random start: cheap and never repeating). */
  nonce(): Buffer;
  /** The part id, or undefined when the token is not one of ours for this message. */
  decode(msgId: string, token: string): string | undefined;
}

const ZERO_NONCE = Buffer.alloc(NONCE);

export function createAttachmentIds(secret: string): AttachmentIds {
  const mac = (ref: string) => createHmac("sha256", secret).update(ref).digest().subarray(0, MAC);
  let counter = randomBytes(NONCE).readBigUInt64BE();

  const encoder = (msgId: string, partId: string) => {
    const ref = Buffer.from(`${msgId}/${partId}`);
    // Plain token after the nonce: MAC, ref length, ref, then filler from the MAC up to full length.
    const plain = Buffer.alloc(Math.max(TOKEN_BYTES - NONCE, REF_AT + ref.length));
    const m = mac(ref.toString());
    m.copy(plain, 0);
    plain.writeUInt16BE(ref.length, MAC);
    ref.copy(plain, REF_AT);
    for (let i = REF_AT + ref.length; i < plain.length; i++) plain[i] = (m[i % MAC] as number) ^ (i & 0xff);
    return (nonce: Buffer | undefined) => {
      const n = nonce ?? ZERO_NONCE;
      const out = Buffer.allocUnsafe(NONCE + plain.length);
      n.copy(out, 0, 0, NONCE);
      for (let i = 0; i < plain.length; i++)
        out[NONCE + i] = (plain[i] as number) ^ (n[i % NONCE] as number) ^ ((i * 0x9d) & 0xff);
      return PREFIX + out.toString("base64url");
    };
  };

  return {
    encode: (msgId, partId, nonce) => encoder(msgId, partId)(nonce),
    encoder,
    nonce() {
      counter = (counter + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
      const b = Buffer.allocUnsafe(NONCE);
      b.writeBigUInt64BE(counter);
      return b;
    },
    decode(msgId, token) {
      if (!token.startsWith(PREFIX)) return undefined;
      const buf = Buffer.from(token.slice(PREFIX.length), "base64url");
      if (buf.length < TOKEN_BYTES) return undefined;
      const n = buf.subarray(0, NONCE);
      const plain = Buffer.allocUnsafe(buf.length - NONCE);
      for (let i = 0; i < plain.length; i++)
        plain[i] = (buf[NONCE + i] as number) ^ (n[i % NONCE] as number) ^ ((i * 0x9d) & 0xff);
      const len = plain.readUInt16BE(MAC);
      if (REF_AT + len > plain.length) return undefined;
      const ref = plain.subarray(REF_AT, REF_AT + len).toString();
      const slash = ref.indexOf("/");
      if (slash < 0 || ref.slice(0, slash) !== msgId) return undefined;
      return mac(ref).equals(plain.subarray(0, MAC)) ? ref.slice(slash + 1) : undefined;
    },
  };
}
