/**
 * The credential id rule, without a socket: the domain over an in-memory
 * access port (test/support/memory-access.ts).
 */
import { describe, expect, it } from "vitest";
import { chosenCredentialId } from "../src/domain/credential-ids.js";
import type { CredentialIssuer } from "../src/domain/credential-ids.js";
import { Credentials } from "../src/domain/credentials.js";
import { LedgerError } from "../src/domain/errors.js";
import { memoryAccess, refusal, shape } from "./support/memory-access.js";

const clock = () => BigInt(Date.now()) * 1000n;
const reject = (id: string): string => {
  throw new LedgerError("invalid_argument", "bad_form", `bad form ${id}`);
};

describe("chosenCredentialId", () => {
  const req = (id: string, issuer: CredentialIssuer) => ({ id, issuer });

  it("generates when no id is asked for, whoever asks", () => {
    expect(chosenCredentialId("k", req("", "tenant"), reject)).toBeUndefined();
    expect(chosenCredentialId("k", req("", "operator"), reject)).toBeUndefined();
  });

  it("refuses a tenant any id with one answer, before looking at the id at all", async () => {
    const answers = await Promise.all(["free", "taken-by-someone", "not a valid id", "x".repeat(500)].map((id) => refusal(() => chosenCredentialId("k", req(id, "tenant"), reject))));
    expect(new Set(answers.map((a) => JSON.stringify(shape(a)))).size).toBe(1);
    expect(shape(answers[0]!)).toMatchObject({ code: "invalid_argument", reason: "id_not_allowed" });
  });

  it("lets the operator fix an id of the kind's form", async () => {
    expect(chosenCredentialId("k", req("alice-laptop", "operator"), (id) => id)).toBe("alice-laptop");
    expect((await refusal(() => chosenCredentialId("k", req("bad id", "operator"), reject))).reason).toBe("bad_form");
  });
});

describe("Credentials.issue ids", () => {
  it("draws a generated id again when it is taken, and no caller hears of it", async () => {
    let clashes = 2;
    const { port } = memoryAccess(() => clashes-- > 0);
    const issued = await new Credentials(port, clock).issue("tb", { kind: "k", idPrefix: "p_" });
    expect(issued.record.id).toMatch(/^p_[0-9a-f]{20}$/);
    expect(clashes).toBeLessThan(0);
  });

  it("gives up, without naming any id, only when every draw is taken", async () => {
    const { port } = memoryAccess(() => true);
    const e = await refusal(new Credentials(port, clock).issue("tb", { kind: "k" }));
    expect(shape(e)).toEqual({ code: "internal", reason: "credential_id_exhausted", message: "could not generate a free credential id", metadata: {} });
  });

  it("tells the operator that a chosen id is taken: it sees every tenant anyway", async () => {
    const { port } = memoryAccess();
    const credentials = new Credentials(port, clock);
    await credentials.issue("ta", { kind: "k", id: "alice-laptop" });
    expect((await refusal(credentials.issue("tb", { kind: "k", id: "alice-laptop" }))).code).toBe("already_exists");
  });

  it("revoking another tenant's id is not_found, as an id nobody has", async () => {
    const { port } = memoryAccess();
    const credentials = new Credentials(port, clock);
    const { record } = await credentials.issue("ta", { kind: "k" });
    const theirs = await refusal(credentials.revoke("tb", "k", record.id));
    const nobodys = await refusal(credentials.revoke("tb", "k", "0".repeat(20)));
    expect(shape(theirs)).toEqual({ ...shape(nobodys), message: nobodys.message.replace("0".repeat(20), record.id) });
    expect(await credentials.find("k", record.id)).toBeDefined();
  });
});
