/**
 * Blacksheep's one refusal for a request no registered key signed, without a
 * socket: the authenticator over an in-memory access port. (The same over a
 * real socket, byte for byte: test/dialect-blacksheep.test.ts.)
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Credentials } from "../src/domain/credentials.js";
import { BLACKSHEEP_KEY_KIND, blacksheepAuthenticator, blacksheepKeyKind, signedString } from "../src/dialects/blacksheep/auth.js";
import { memoryAccess, refusal, shape } from "./support/memory-access.js";

const clock = () => BigInt(Date.now()) * 1000n;

describe("Blacksheep's refusal of a request no registered key signed", () => {
  const rawPublic = (k: KeyObject) => Buffer.from(k.export({ format: "jwk" }).x!, "base64url");
  const path = "/account.balance.getMany";

  function request(keyId: string, signer: KeyObject) {
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(16).toString("base64");
    const signature = sign(null, Buffer.from(signedString(keyId, ts, nonce, "POST", path, ""), "utf8"), signer).toString("base64");
    const headers = new Headers({ "bs-key-id": keyId, "bs-timestamp": ts, "bs-nonce": nonce, "bs-signature": signature });
    return { headers, procedure: "/blacksheep.v1.AccountBalanceService/GetMany", http: { method: "POST", url: path, body: new Uint8Array(0) } };
  }

  it("is one error for an unknown, revoked or malformed key id and a bad signature; a good one passes", async () => {
    const { port } = memoryAccess();
    const credentials = new Credentials(port, clock);
    const kind = blacksheepKeyKind(credentials);
    const auth = blacksheepAuthenticator(credentials);
    const mine = generateKeyPairSync("ed25519");
    const stranger = generateKeyPairSync("ed25519");
    const live = await kind.issue("ta", { accountId: "a", orgId: "", scopes: [], label: "", publicKey: rawPublic(mine.publicKey), id: "", issuer: "tenant" });
    const gone = await kind.issue("ta", { accountId: "a", orgId: "", scopes: [], label: "", publicKey: rawPublic(mine.publicKey), id: "", issuer: "tenant" });
    await credentials.revoke("ta", BLACKSHEEP_KEY_KIND, gone.record.id);

    expect((await auth(request(live.record.id, mine.privateKey)))?.accountId).toBe("a");
    const refusals = await Promise.all(
      [
        request(live.record.id, stranger.privateKey), // bad signature
        request("0".repeat(20), mine.privateKey), // unknown key id
        request(gone.record.id, mine.privateKey), // revoked
        request("not a key id", mine.privateKey), // malformed
      ].map((r) => refusal(auth(r))),
    );
    expect(refusals.map(shape)).toEqual(Array(4).fill({ code: "unauthenticated", reason: "invalid_signature", message: "invalid signature", metadata: {} }));
  });
});
