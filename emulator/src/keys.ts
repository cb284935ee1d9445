// The emulator's own OIDC signing key: an RSA key made at start, published as JWKS (like
// googleapis.com/oauth2/v3/certs) and as a {kid: PEM} map (like /oauth2/v1/certs, which
// google-auth-library's verifyIdToken fetches under Node), and used to sign RS256 JWTs.
import { createHash, generateKeyPair, sign, type KeyObject } from "node:crypto";

export interface SigningKey {
  kid: string;
  jwks: { keys: Array<Record<string, unknown>> };
  pemCerts: Record<string, string>;
  signJwt(claims: Record<string, unknown>): string;
}

/** Generates the key off the main thread (libuv pool), so it overlaps with building mailboxes. */
export function createSigningKey(): Promise<SigningKey> {
  return new Promise((resolve, reject) => {
    generateKeyPair("rsa", { modulusLength: 2048 }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve(signingKeyFrom(privateKey, publicKey)),
    );
  });
}

export function signingKeyFrom(privateKey: KeyObject, publicKey: KeyObject): SigningKey {
  const kid = createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 40);
  const jwk = publicKey.export({ format: "jwk" });
  return {
    kid,
    jwks: { keys: [{ ...jwk, alg: "RS256", use: "sig", kid }] },
    // An SPKI public-key PEM: google-auth-library accepts it where Google serves X.509 certificates.
    pemCerts: { [kid]: publicKey.export({ type: "spki", format: "pem" }).toString() },
    signJwt(claims) {
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const input = `${enc({ alg: "RS256", kid, typ: "JWT" })}.${enc(claims)}`;
      return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
    },
  };
}
