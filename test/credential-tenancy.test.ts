/**
 * The cross-tenant credential matrix, over real sockets, on both stores:
 * for every credential kind, tenant B creating a credential with tenant A's
 * id, presenting A's id, revoking it, and listing its own — none of which may
 * reveal A's credential, not even that it exists. Each probe with A's id is
 * compared with the same probe on an id nobody has: the answers must be equal
 * (status, headers and body for a vendor's client; code, message and details
 * for the admin API).
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectError } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { AdminService } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { Credentials } from "../src/domain/credentials.js";
import type { CredentialKind, CredentialRequest } from "../src/domain/credentials.js";
import { Credits } from "../src/domain/credits/credits.js";
import { Ledger } from "../src/domain/ledger.js";
import { PageTokens } from "../src/domain/page-token.js";
import { StreamLimiter } from "../src/domain/stream-limiter.js";
import type { Store } from "../src/domain/store.js";
// Only the dialect table, never a dialect's own module: this matrix covers the
// kinds of whichever dialects exist (test/dialect-removal.test.ts).
import { DIALECTS } from "../src/dialects/index.js";
import { triportCookie } from "./support/dialect-clients.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

type Admin = Client<typeof AdminService>;

/** What proves a credential: a secret (hex or base64url) or an Ed25519 private key. */
type Proof = string | KeyObject;

interface Issued {
  readonly id: string;
  readonly proof: Proof;
}

/** Everything a client sees of an answer except the Date header. */
interface Answer {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/** The CreateCredential fields a kind needs beside its kind and id. */
interface Fields {
  readonly accountId?: string;
  readonly orgId?: string;
  readonly scopes?: string[];
  readonly publicKey?: Uint8Array;
}

interface KindCase {
  readonly kind: string;
  /** The fields of a CreateCredential in either tenant (both have the same account and org ids). */
  fields(): { request: Fields; proof?: KeyObject };
  /** The proof out of CreateCredential's answer. */
  proofOf(secret: string, generated: KeyObject | undefined): Proof;
  /** A request presenting `id` with `proof`, as the vendor's client sends it. */
  present(id: string, proof: Proof): Promise<Answer>;
  /** A well-formed id nobody has, shaped like a generated one. */
  unknownId(): string;
  /** A proof that belongs to no credential. */
  strayProof(): Proof;
  /** Whether the operator may choose its ids (`tally credential create --id`). */
  readonly operatorIds: boolean;
}

const ACCOUNT = "shared";
const ORG = "org-1";
const BILLING = "5d1f0e6a-9b2c-4e8f-a1b3-c4d5e6f70809";
const hex = (bytes: number) => randomBytes(bytes).toString("hex");

let server: TestServer;
let adminA: Admin;
let adminB: Admin;

async function answer(res: Response): Promise<Answer> {
  // The request id is generated per request: it tells nothing of the request.
  const headers = [...res.headers].filter(([name]) => name !== "date" && name !== "x-request-id");
  return { status: res.status, headers, body: await res.text() };
}

async function send(path: string, init: RequestInit): Promise<Answer> {
  return answer(await fetch(server.url + path, init));
}

/** A Blacksheep getMany signed by `key` under `keyId`, as docs/dialects/blacksheep.md says. */
function blacksheepRequest(keyId: string, key: KeyObject): Promise<Answer> {
  const path = "/account.balance.getMany";
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("base64");
  const len = (s: string) => Buffer.byteLength(s, "utf8");
  const signed = `${len(keyId)}:${keyId}:${len(ts)}:${ts}:${len(nonce)}:${nonce}:POST:${len(path)}:${path}:`;
  const signature = sign(null, Buffer.from(signed, "utf8"), key).toString("base64");
  return send(path, { method: "POST", headers: { "Bs-Key-Id": keyId, "Bs-Timestamp": ts, "Bs-Nonce": nonce, "Bs-Signature": signature } });
}

function rawPublicKey(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: "jwk" }).x!, "base64url");
}

/** The secret part of a `<prefix>_<id>_<secret>` token. */
const tokenSecret = (token: string) => token.slice(token.lastIndexOf("_") + 1);

const CASES: readonly KindCase[] = [
  {
    kind: "3plguys_api_key",
    fields: () => ({ request: { accountId: ACCOUNT, scopes: ["invoices"] } }),
    proofOf: tokenSecret,
    present: (id, proof) => send("/v0/balance", { headers: { authorization: `Bearer 3pg_${id}_${String(proof)}` } }),
    unknownId: () => hex(10),
    strayProof: () => hex(20),
    operatorIds: false,
  },
  {
    kind: "metronome_platform_key",
    fields: () => ({ request: {} }),
    proofOf: tokenSecret,
    present: (id, proof) =>
      send("/v1/contracts/customerBalances/list", {
        method: "POST",
        headers: { authorization: `Bearer mtr_${id}_${String(proof)}`, "content-type": "application/json" },
        body: JSON.stringify({ customer_id: "c-1" }),
      }),
    unknownId: () => hex(10),
    strayProof: () => hex(20),
    operatorIds: false,
  },
  {
    kind: "frontier_client",
    fields: () => ({ request: { orgId: ORG } }),
    proofOf: (secret) => secret,
    present: (id, proof) =>
      send(`/v1beta1/organizations/${ORG}/billing/${BILLING}/balance`, {
        headers: { authorization: "Basic " + Buffer.from(`${id}:${String(proof)}`).toString("base64") },
      }),
    unknownId: () => hex(10),
    strayProof: () => hex(20),
    operatorIds: true,
  },
  {
    kind: "triport_session_key",
    fields: () => ({ request: {} }),
    proofOf: (secret) => secret,
    present: (id, proof) => send("/v1/balance", { headers: { cookie: triportCookie(String(proof), id, ACCOUNT) } }),
    unknownId: () => "tsk_" + hex(10),
    strayProof: () => randomBytes(32).toString("base64url"),
    operatorIds: true,
  },
  {
    kind: "blacksheep_public_key",
    fields: () => {
      const { publicKey, privateKey } = generateKeyPairSync("ed25519");
      return { request: { accountId: ACCOUNT, publicKey: rawPublicKey(publicKey) }, proof: privateKey };
    },
    proofOf: (_secret, generated) => generated!,
    present: (id, proof) => blacksheepRequest(id, proof as KeyObject),
    unknownId: () => hex(10),
    strayProof: () => generateKeyPairSync("ed25519").privateKey,
    operatorIds: true,
  },
];

/** Issues a credential of `c` through the admin API. */
async function issue(admin: Admin, c: KindCase): Promise<Issued> {
  const { request, proof } = c.fields();
  const res = await admin.createCredential({ kind: c.kind, ...request });
  return { id: res.credential!.id, proof: c.proofOf(res.secret, proof) };
}

/** Every dialect's credential kinds over `store`, built as `tally credential create` builds them. */
function operatorKinds(store: Store): Map<string, CredentialKind> {
  const clock = () => BigInt(Date.now()) * 1000n;
  const deps = {
    ledger: new Ledger({ store, clock }),
    credits: new Credits(store, clock),
    credentials: new Credentials(store, clock),
    pageTokens: new PageTokens(new Uint8Array(32)),
    streams: new StreamLimiter(1),
    shutdown: new AbortController().signal,
  };
  return new Map([...DIALECTS.values()].flatMap((make) => make(deps).credentialKinds ?? []).map((k) => [k.kind, k]));
}

/** Issues a credential of `c` in tenant "ta" under a chosen id, as `tally credential create --id` does. */
async function issueAsOperator(c: KindCase, id: string): Promise<Issued> {
  const { request, proof } = c.fields();
  const req: CredentialRequest = {
    accountId: request.accountId ?? "",
    orgId: request.orgId ?? "",
    scopes: request.scopes ?? [],
    label: "",
    publicKey: request.publicKey ?? new Uint8Array(0),
    id,
    issuer: "operator",
  };
  const issued = await operatorKinds(server.tally.store).get(c.kind)!.issue("ta", req);
  return { id: issued.record.id, proof: c.proofOf(issued.secret ?? "", proof) };
}

/** What the admin API answered: the whole error, or "ok". */
async function outcome(call: Promise<unknown>, id?: string): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (e) {
    const err = ConnectError.from(e);
    // An id the caller sent itself may come back in the message (and so change the
    // body's length); nothing else may differ.
    const metadata = [...err.metadata].filter(([name]) => name !== "date" && name !== "x-request-id" && (id === undefined || name !== "content-length"));
    const text = JSON.stringify({ code: err.code, message: err.rawMessage, details: err.details, metadata });
    return id === undefined ? text : text.split(id).join("<id>");
  }
}

beforeAll(async () => {
  server = await startTestServer();
  const operator = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  for (const t of ["ta", "tb"]) {
    const { adminKeySecret } = await operator.createTenant({ id: t, name: t });
    const ledger = clientFor(LedgerService, server.url, "connect-binary", adminKeySecret);
    await ledger.createAccount({ id: ACCOUNT });
    if (t === "ta") adminA = clientFor(AdminService, server.url, "connect-binary", adminKeySecret);
    else adminB = clientFor(AdminService, server.url, "connect-binary", adminKeySecret);
  }
}, 60_000);
afterAll(async () => {
  await server?.close();
});

/** The kinds of the dialects this build has (building them touches no store, so a stand-in does). */
const OFFERED = new Set(operatorKinds({} as Store).keys());

describe.each(CASES.filter((c) => OFFERED.has(c.kind)))("$kind across tenants", (c) => {
  /** A's credentials: one with a generated id, and one with an operator-chosen id where the kind allows it. */
  const a: Issued[] = [];
  let b: Issued;

  beforeAll(async () => {
    a.push(await issue(adminA, c));
    if (c.operatorIds) a.push(await issueAsOperator(c, `chosen-${c.kind.length}-${hex(3)}`));
    b = await issue(adminB, c);
  });

  it("A's credentials work, and B's work, each with its own proof", async () => {
    for (const x of [...a, b]) expect((await c.present(x.id, x.proof)).status, x.id).not.toBe(401);
  });

  it("B creating a credential with A's id is answered as with an id nobody has, and creates nothing", async () => {
    const before = (await server.tally.store.listCredentials(c.kind, "tb")).length;
    const withId = (id: string) => outcome(adminB.createCredential({ kind: c.kind, ...c.fields().request, id }));
    const nobodys = await withId(c.unknownId());
    expect(nobodys).not.toBe("ok");
    for (const x of a) expect(await withId(x.id)).toBe(nobodys);
    // B's own id too: the answer never depends on whether, or whose, the id is.
    expect(await withId(b.id)).toBe(nobodys);
    expect(await outcome(adminA.createCredential({ kind: c.kind, ...c.fields().request, id: a[0]!.id }))).toBe(nobodys);
    expect((await server.tally.store.listCredentials(c.kind, "tb")).length).toBe(before);
  });

  it("B presenting A's id, with B's proof or any other, is refused exactly like an id nobody has", async () => {
    const reference = await c.present(c.unknownId(), b.proof);
    expect(reference.status).toBe(401);
    for (const x of a) {
      expect(await c.present(x.id, b.proof)).toEqual(reference);
      expect(await c.present(x.id, c.strayProof())).toEqual(reference);
    }
    expect(await c.present(c.unknownId(), c.strayProof())).toEqual(reference);
  });

  it("B revoking A's id is not_found exactly like an id nobody has, and A's credential keeps working", async () => {
    const unknown = c.unknownId();
    const reference = await outcome(adminB.revokeCredential({ kind: c.kind, id: unknown }), unknown);
    expect(reference).toContain('"code":5');
    for (const x of a) {
      expect(await outcome(adminB.revokeCredential({ kind: c.kind, id: x.id }), x.id)).toBe(reference);
      expect((await c.present(x.id, x.proof)).status).not.toBe(401);
    }
  });

  it("B's list of credentials holds none of A's, and A's holds none of B's", async () => {
    const ids = async (tenant: string) => (await server.tally.store.listCredentials(c.kind, tenant)).map((r) => r.id);
    const inB = await ids("tb");
    const inA = await ids("ta");
    expect(inB).toContain(b.id);
    for (const x of a) {
      expect(inB).not.toContain(x.id);
      expect(inA).toContain(x.id);
    }
    expect(inA).not.toContain(b.id);
  });
});

describe.each(CASES.filter((c) => c.operatorIds && OFFERED.has(c.kind)).slice(0, 1))("the operator's chosen $kind ids", (c) => {
  it("are the ids clients present, and a tenant's credential never takes one", async () => {
    const chosen = await issueAsOperator(c, "alice-laptop");
    expect(chosen.id).toBe("alice-laptop");
    expect((await c.present("alice-laptop", chosen.proof)).status).not.toBe(401);
    // Over the API the same id is refused like any other chosen id.
    const refused = await outcome(adminB.createCredential({ kind: c.kind, ...c.fields().request, id: "alice-laptop" }));
    expect(refused).toBe(await outcome(adminB.createCredential({ kind: c.kind, ...c.fields().request, id: "bob-laptop" })));
    expect(refused).toContain("generated by the server");
  });
});
