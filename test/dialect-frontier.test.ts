import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { FrontierService, GetBillingBalanceRequestSchema, GetBillingBalanceResponseSchema } from "../gen/raystack/frontier/v1beta1/frontier_pb.js";
import { AdminService, KeyScope } from "../gen/tally/admin/v1/admin_pb.js";
import { LedgerService } from "../gen/tally/ledger/v1/ledger_pb.js";
import { clientFor, startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

// Frontier's billing balance against a real server: REST as Frontier's
// grpc-gateway served it, and the same method over Connect and gRPC, all with
// HTTP Basic client credentials. A settable clock makes every timestamp a
// literal, so bodies are compared byte for byte.

/** 2024-07-13T09:54:48.253Z in epoch microseconds: the seed document's example time. */
const T0 = 1_720_864_488_253_000n;
let now = T0;

let server: TestServer;
let admin: ReturnType<typeof clientFor<typeof AdminService>>;
let ledger: ReturnType<typeof clientFor<typeof LedgerService>>;
/** Basic header of a live frontier_client credential of org-a. */
let orgA: { id: string; secret: string; basic: string };
let orgB: { id: string; basic: string };
let revoked: { basic: string };

const basic = (id: string, secret: string) => "Basic " + Buffer.from(`${id}:${secret}`).toString("base64");

// Billing ids are UUIDs (Frontier's proto declares string.uuid on them).
const EMPTY = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e01";
const FUNDED = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e02";
const OTHER_ORG = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e03";
const BIG = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e04";
const USD = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e05";
const BAD_CURRENCY = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e06";
/** An account with a UUID id but no org_id: not a billing account. */
const PLAIN = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e07";
/** A UUID no account has. */
const MISSING = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4eff";

beforeAll(async () => {
  server = await startTestServer({ clock: () => now, dialects: ["frontier"] });
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);

  // Billing accounts are Tally accounts attached to an organization by metadata.
  now = T0; // created at .253
  await ledger.createAccount({ id: EMPTY, metadata: { org_id: "org-a" } });
  now = T0 + 1_000_000n; // 09:54:49.253
  await ledger.createAccount({ id: FUNDED, metadata: { org_id: "org-a" } });
  await ledger.createAccount({ id: OTHER_ORG, metadata: { org_id: "org-b" } });
  await ledger.createAccount({ id: PLAIN, metadata: {} });
  await ledger.createAccount({ id: "plain-account", metadata: {} });
  await ledger.createAccount({ id: BIG, metadata: { org_id: "org-a" } });
  await ledger.createAccount({ id: USD, metadata: { org_id: "org-a", balance_currency: "USD" } });
  await ledger.createAccount({ id: BAD_CURRENCY, metadata: { org_id: "org-a", balance_currency: "credits" } });
  now = T0 + 2_747_000n; // 09:54:51.000: a whole second, written without fraction
  await ledger.postTransfer({ idempotencyKey: "f1", debitAccountId: "@world", creditAccountId: FUNDED, asset: "VC", amount: 1000n });
  await ledger.postTransfer({ idempotencyKey: "f2", debitAccountId: "@world", creditAccountId: OTHER_ORG, asset: "VC", amount: 77n });
  now = T0 + 3_000_000n; // 09:54:51.253
  await ledger.postTransfer({ idempotencyKey: "f3", debitAccountId: "@world", creditAccountId: FUNDED, asset: "VC", amount: 500n });
  await ledger.postTransfer({ idempotencyKey: "f4", debitAccountId: "@world", creditAccountId: BIG, asset: "VC", amount: 9007199254740993n });
  // A hold: not counted, the amount is the posted balance like every dialect's.
  await ledger.postTransfer({ idempotencyKey: "f5", debitAccountId: BIG, creditAccountId: "@world", asset: "VC", amount: 1n, pending: true });
  await ledger.postTransfer({ idempotencyKey: "f6", debitAccountId: "@world", creditAccountId: USD, asset: "USD", amount: 2_500_000n });

  const a = await admin.createCredential({ kind: "frontier_client", orgId: "org-a", label: "billing worker" });
  orgA = { id: a.credential!.id, secret: a.secret, basic: basic(a.credential!.id, a.secret) };
  const b = await admin.createCredential({ kind: "frontier_client", orgId: "org-b" });
  orgB = { id: b.credential!.id, basic: basic(b.credential!.id, b.secret) };
  const r = await admin.createCredential({ kind: "frontier_client", orgId: "org-a" });
  revoked = { basic: basic(r.credential!.id, r.secret) };
  await admin.revokeCredential({ kind: "frontier_client", id: r.credential!.id });
});
afterAll(async () => {
  await server.close();
});

/**
 * Frontier's own generated descriptors, from the vendor's npm package. It
 * ships TypeScript sources with extensionless imports, which vitest compiles
 * but NodeNext type checking would refuse, so it is imported by a name tsc
 * does not follow and typed by what the tests read of it.
 */
async function protonFrontier(): Promise<{ FrontierServiceQueries: { getBillingBalance: DescMethodUnary } }> {
  const name = "@raystack/proton/frontier";
  return (await import(name)) as { FrontierServiceQueries: { getBillingBalance: DescMethodUnary } };
}

async function get(path: string, authorization?: string, method = "GET"): Promise<{ status: number; text: string; type: string | null }> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(server.url + path, { method, headers });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

const balancePath = (org: string, id: string) => `/v1beta1/organizations/${org}/billing/${id}/balance`;
const NOT_FOUND = '{"code":5,"message":"billing account doesn\'t exist","details":[]}';
const INVALID_ID = '{"code":3,"message":"invalid GetBillingBalanceRequest.Id: value must be a valid UUID | caused by: invalid uuid format","details":[]}';
const UNAUTHENTICATED_BAD = '{"code":16,"message":"not authenticated: invalid client id or client secret","details":[]}';

describe("GET /v1beta1/organizations/{org_id}/billing/{id}/balance", () => {
  it("reports a new account as amount \"0\" in VC, updated at its creation time", async () => {
    const r = await get(balancePath("org-a", EMPTY), orgA.basic);
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    expect(r.text).toBe('{"balance":{"amount":"0","currency":"VC","updated_at":"2024-07-13T09:54:48.253Z"}}');
  });

  it("reports a funded account with the time of its last change", async () => {
    const r = await get(balancePath("org-a", FUNDED), orgA.basic);
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("writes int64 digits exactly and does not count open holds", async () => {
    const r = await get(balancePath("org-a", BIG), orgA.basic);
    expect(r.text).toBe('{"balance":{"amount":"9007199254740993","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("reports the asset the account's balance_currency names, in its smallest unit", async () => {
    const r = await get(balancePath("org-a", USD), orgA.basic);
    expect(r.text).toBe('{"balance":{"amount":"2500000","currency":"USD","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("writes a whole-second time without a fraction, as protojson does", async () => {
    const r = await get(balancePath("org-b", OTHER_ORG), orgB.basic);
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"balance":{"amount":"77","currency":"VC","updated_at":"2024-07-13T09:54:51Z"}}');
  });

  it("answers another organization's billing id exactly like a nonexistent one", async () => {
    const foreign = await get(balancePath("org-a", OTHER_ORG), orgA.basic);
    const missing = await get(balancePath("org-a", MISSING), orgA.basic);
    const notBilling = await get(balancePath("org-a", PLAIN), orgA.basic);
    for (const r of [foreign, missing, notBilling]) {
      expect(r.status).toBe(404);
      expect(r.text).toBe(NOT_FOUND);
    }
  });

  it("answers a path org_id that is not the credential's with the same 404", async () => {
    // Its own account through another org's path, and another org's account through that org's path.
    for (const path of [balancePath("org-b", FUNDED), balancePath("org-b", OTHER_ORG), balancePath("org-zzz", EMPTY)]) {
      const r = await get(path, orgA.basic);
      expect(r.status).toBe(404);
      expect(r.text).toBe(NOT_FOUND);
    }
  });

  it("refuses a request without credentials", async () => {
    const r = await get(balancePath("org-a", FUNDED));
    expect(r.status).toBe(401);
    expect(r.text).toBe('{"code":16,"message":"not authenticated: send Authorization: Basic base64(client_id:client_secret)","details":[]}');
  });

  it("refuses a bad secret, an unknown client id and a malformed Basic header alike", async () => {
    const headers = [
      basic(orgA.id, orgA.secret + "x"),
      basic("no-such-client", orgA.secret),
      "Basic !!!",
      "Basic " + Buffer.from(orgA.id + orgA.secret).toString("base64"),
      "Basic",
    ];
    for (const h of headers) {
      const r = await get(balancePath("org-a", FUNDED), h);
      expect(r.status, h).toBe(401);
      expect(r.text).toBe(UNAUTHENTICATED_BAD);
    }
  });

  it("refuses a revoked credential", async () => {
    const r = await get(balancePath("org-a", FUNDED), revoked.basic);
    expect(r.status).toBe(401);
    expect(r.text).toBe(UNAUTHENTICATED_BAD);
  });

  it("lets a Tally account-scoped key read its own billing account only; refuses an admin key", async () => {
    const { secret } = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: FUNDED });
    const own = await get(balancePath("org-a", FUNDED), `Bearer ${secret}`);
    expect(own.status).toBe(200);
    expect(own.text).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    const other = await get(balancePath("org-a", EMPTY), `Bearer ${secret}`);
    expect(other.status).toBe(404);
    expect(other.text).toBe(NOT_FOUND);
    const wrongOrg = await get(balancePath("org-b", FUNDED), `Bearer ${secret}`);
    expect(wrongOrg.text).toBe(NOT_FOUND);
    const overConnect = await fetch(server.url + "/raystack.frontier.v1beta1.FrontierService/GetBillingBalance", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
      body: `{"id":"${FUNDED}"}`,
    });
    expect(await overConnect.text()).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    const adminKey = await get(balancePath("org-a", FUNDED), `Bearer ${server.adminKey}`);
    expect(adminKey.status).toBe(403);
    expect(adminKey.text).toBe(
      '{"code":7,"message":"this method needs a frontier_client credential (HTTP Basic) or an account-scoped API key","details":[]}',
    );
  });

  it("answers an id that is not a UUID with 400 before any lookup, whether or not such an account exists", async () => {
    // "plain-account" exists (without org_id); the others name nothing. All get the same answer.
    const ids = ["a%20b", "plain-account", "ba-1", MISSING.replaceAll("-", ""), `%7B${MISSING}%7D`, `urn:uuid:${MISSING}`, MISSING + "0", MISSING.slice(1)];
    for (const id of ids) {
      const bad = await get(balancePath("org-a", id), orgA.basic);
      expect(bad.status, id).toBe(400);
      expect(bad.text).toBe(INVALID_ID);
    }
    // Through another organization's path too: the id's form is checked first.
    const foreignPath = await get(balancePath("org-b", "plain-account"), orgA.basic);
    expect(foreignPath.text).toBe(INVALID_ID);
  });

  it("accepts a UUID in any case, as protoc-gen-validate does (ids stay case-sensitive)", async () => {
    const upper = await get(balancePath("org-a", FUNDED.toUpperCase()), orgA.basic);
    expect(upper.status).toBe(404);
    expect(upper.text).toBe(NOT_FOUND);
  });

  it("answers a misconfigured currency with 500, in the envelope", async () => {
    const misconfigured = await get(balancePath("org-a", BAD_CURRENCY), orgA.basic);
    expect(misconfigured.status).toBe(500);
    expect(misconfigured.text).toBe('{"code":13,"message":"billing account has an invalid balance_currency in its metadata","details":[]}');
  });

  it("answers another method with 405 and Allow: GET", async () => {
    const res = await fetch(server.url + balancePath("org-a", FUNDED), { method: "POST", headers: { authorization: orgA.basic } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect(await res.text()).toBe('{"code":12,"message":"method POST not allowed","details":[]}');
  });

  it("keeps another tenant's billing accounts out of reach", async () => {
    const t = await admin.createTenant({ id: "tenant-b", name: "B" });
    const ledgerB = clientFor(LedgerService, server.url, "connect-binary", t.adminKeySecret);
    const { account } = await ledgerB.createAccount({ metadata: { org_id: "org-a" } });
    const r = await get(balancePath("org-a", account!.id), orgA.basic);
    expect(r.status).toBe(404);
    expect(r.text).toBe(NOT_FOUND);
  });
});

describe("POST /raystack.frontier.v1beta1.FrontierService/GetBillingBalance (Connect)", () => {
  const PROCEDURE = "/raystack.frontier.v1beta1.FrontierService/GetBillingBalance";
  async function connect(body: string, authorization?: string): Promise<{ status: number; text: string; type: string | null }> {
    const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
    if (authorization !== undefined) headers.authorization = authorization;
    const res = await fetch(server.url + PROCEDURE, { method: "POST", headers, body });
    return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
  }
  const errorBody = (code: string, message: string, reason: string, value: string) =>
    JSON.stringify({ code, message, details: [{ type: "tally.ledger.v1.ErrorDetail", debug: { reason }, value }] });
  const NOT_FOUND_CONNECT = errorBody("not_found", "billing account doesn't exist", "billing_account_not_found", "ChliaWxsaW5nX2FjY291bnRfbm90X2ZvdW5k");

  it("answers JSON with proto field names, leaving zero values out, as Frontier's protojson codec does", async () => {
    const funded = await connect(`{"id": "${FUNDED}"}`, orgA.basic);
    expect(funded.status).toBe(200);
    expect(funded.type).toBe("application/json");
    expect(funded.text).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    // amount 0 is left out here (REST writes "amount":"0").
    const empty = await connect(`{"id":"${EMPTY}"}`, orgA.basic);
    expect(empty.text).toBe('{"balance":{"currency":"VC","updated_at":"2024-07-13T09:54:48.253Z"}}');
    const big = await connect(`{"id":"${BIG}"}`, orgA.basic);
    expect(big.text).toBe('{"balance":{"amount":"9007199254740993","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    const wholeSecond = await connect(`{"id":"${OTHER_ORG}"}`, orgB.basic);
    expect(wholeSecond.text).toBe('{"balance":{"amount":"77","currency":"VC","updated_at":"2024-07-13T09:54:51Z"}}');
  });

  it("reads org_id in both spellings, as protojson does", async () => {
    const funded = '{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}';
    for (const key of ["org_id", "orgId"]) {
      const own = await connect(`{"id":"${FUNDED}","${key}":"org-a"}`, orgA.basic);
      expect(own.text, key).toBe(funded);
      // Read, not ignored: another organization's id in either spelling is refused.
      const other = await connect(`{"id":"${FUNDED}","${key}":"org-b"}`, orgA.basic);
      expect(other.status, key).toBe(404);
      expect(other.text).toBe(NOT_FOUND_CONNECT);
    }
    // One field set under both names is ambiguous: refused, as protojson refuses a duplicate field.
    const twice = await connect(`{"id":"${FUNDED}","org_id":"org-a","orgId":"org-a"}`, orgA.basic);
    expect(twice.status).toBe(400);
    expect(JSON.parse(twice.text)).toMatchObject({ code: "invalid_argument" });
  });

  it("refuses an id that is not a UUID with invalid_argument, in Connect's error JSON", async () => {
    const expected = errorBody(
      "invalid_argument",
      "invalid GetBillingBalanceRequest.Id: value must be a valid UUID | caused by: invalid uuid format",
      "invalid_id",
      "CgppbnZhbGlkX2lk",
    );
    for (const id of ["plain-account", "ba-1", MISSING.replaceAll("-", "")]) {
      const r = await connect(`{"id":"${id}"}`, orgA.basic);
      expect(r.status, id).toBe(400);
      expect(r.text).toBe(expected);
    }
  });

  it("refuses foreign, missing and wrong-org ids alike, and bad credentials, with error bodies unchanged", async () => {
    const foreign = await connect(`{"id":"${OTHER_ORG}"}`, orgA.basic);
    const missing = await connect(`{"id":"${MISSING}"}`, orgA.basic);
    const notBilling = await connect(`{"id":"${PLAIN}"}`, orgA.basic);
    const wrongOrg = await connect(`{"id":"${FUNDED}","orgId":"org-b"}`, orgA.basic);
    expect(foreign.status).toBe(404);
    expect(foreign.text).toBe(NOT_FOUND_CONNECT);
    for (const r of [missing, notBilling, wrongOrg]) expect(r.text).toBe(foreign.text);
    const noAuth = await connect(`{"id":"${FUNDED}"}`);
    expect(noAuth.status).toBe(401);
    // Without any Authorization the Bearer interceptor answers (a Tally key is also accepted here).
    expect(JSON.parse(noAuth.text)).toMatchObject({ code: "unauthenticated" });
    const bad = await connect(`{"id":"${FUNDED}"}`, basic(orgA.id, "wrong"));
    expect(bad.status).toBe(401);
    expect(bad.text).toBe(
      errorBody("unauthenticated", "not authenticated: invalid client id or client secret", "invalid_client_credentials", "ChppbnZhbGlkX2NsaWVudF9jcmVkZW50aWFscw"),
    );
    const rev = await connect(`{"id":"${FUNDED}"}`, revoked.basic);
    expect(rev.text).toBe(bad.text);
    const empty = await connect("{}", orgA.basic);
    expect(empty.status).toBe(400);
    expect(empty.text).toBe(errorBody("invalid_argument", "id is required: the billing account to get the balance for", "missing_id", "CgptaXNzaW5nX2lk"));
  });

  /** What a current Frontier client sends: Basic auth on every call. */
  const basicAuth = (header: string): Interceptor => (next) => (req) => {
    req.header.set("authorization", header);
    return next(req);
  };

  it("serves a connect-es client over Connect JSON and Connect binary", async () => {
    for (const useBinaryFormat of [false, true]) {
      const client = createClient(
        FrontierService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat, interceptors: [basicAuth(orgA.basic)] }),
      );
      const { balance } = await client.getBillingBalance({ id: BIG });
      expect(balance?.amount).toBe(9007199254740993n);
      expect(balance?.currency).toBe("VC");
      expect(balance?.updatedAt?.seconds).toBe(1_720_864_491n);
      expect(balance?.updatedAt?.nanos).toBe(253_000_000);
      const err = await client.getBillingBalance({ id: OTHER_ORG }).catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.NotFound);
      const invalid = await client.getBillingBalance({ id: "ba-1" }).catch((e: unknown) => e);
      expect(ConnectError.from(invalid).code).toBe(Code.InvalidArgument);
    }
  });

  it("answers Connect binary as protobuf", async () => {
    const res = await fetch(server.url + PROCEDURE, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1", authorization: orgA.basic },
      body: toBinary(GetBillingBalanceRequestSchema, create(GetBillingBalanceRequestSchema, { id: FUNDED, orgId: "org-a" })),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/proto");
    const { balance } = fromBinary(GetBillingBalanceResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect([balance?.amount, balance?.currency, balance?.updatedAt?.seconds]).toEqual([1500n, "VC", 1_720_864_491n]);
  });

  it("serves a client built from Frontier's own descriptor (@raystack/proton), JSON and binary", async () => {
    const proton = await protonFrontier();
    const method = proton.FrontierServiceQueries.getBillingBalance;
    expect(method.parent.typeName).toBe("raystack.frontier.v1beta1.FrontierService");
    // Frontier's proto declares the rule Tally enforces: (validate.rules).string.uuid = true on id
    // (FieldOptions extension 1071, StringRules at 14, uuid at 22).
    const idOptions = method.input.fields.find((f) => f.name === "id")!.proto.options!;
    const rules = idOptions.$unknown?.find((u) => u.no === 1071);
    expect(rules === undefined ? undefined : Buffer.from(rules.data).toString("hex")).toBe("057203b00101");
    for (const useBinaryFormat of [false, true]) {
      const client = createClient(
        method.parent as unknown as typeof FrontierService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat, interceptors: [basicAuth(orgA.basic)] }),
      );
      const { balance } = await client.getBillingBalance({ id: FUNDED, orgId: "org-a" });
      expect(balance?.amount).toBe(1500n);
      expect(balance?.currency).toBe("VC");
      expect(balance?.updatedAt?.seconds).toBe(1_720_864_491n);
      expect(balance?.updatedAt?.nanos).toBe(253_000_000);
    }
  });

  it("is served by Tally's lean path with the service's options (where connect-es would answer internal)", async () => {
    // connect-es reports an undecodable binary body as internal (500); the
    // lean path as the client's invalid_argument. So the JSON answers above
    // came from the lean path, written with FrontierService's JSON options.
    const res = await fetch(server.url + PROCEDURE, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-protocol-version": "1", authorization: orgA.basic },
      body: new Uint8Array([0xff, 0xff, 0xff]),
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(await res.text())).toMatchObject({ code: "invalid_argument" });
  });

  it("writes proto names on connect-es's own pipeline too (gRPC-Web JSON, which the lean path leaves to it)", async () => {
    const json = new TextEncoder().encode(`{"id":"${FUNDED}","org_id":"org-a"}`);
    const frame = new Uint8Array(5 + json.length);
    new DataView(frame.buffer).setUint32(1, json.length);
    frame.set(json, 5);
    const res = await fetch(server.url + PROCEDURE, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+json", "x-grpc-web": "1", authorization: orgA.basic },
      body: frame,
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body[0]).toBe(0); // a message envelope, then the trailers
    const message = body.subarray(5, 5 + body.readUInt32BE(1)).toString("utf8");
    expect(message).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    expect(body.subarray(5 + message.length).toString("latin1")).toContain("grpc-status: 0");
  });

  it("serves gRPC and gRPC-Web", async () => {
    const grpc = createClient(FrontierService, createGrpcTransport({ baseUrl: server.url, interceptors: [basicAuth(orgA.basic)] }));
    const { balance } = await grpc.getBillingBalance({ id: FUNDED });
    expect(balance?.amount).toBe(1500n);
    expect(balance?.currency).toBe("VC");
    expect(balance?.updatedAt?.seconds).toBe(1_720_864_491n);
    const wrongOrg = await grpc.getBillingBalance({ id: FUNDED, orgId: "org-b" }).catch((e: unknown) => e);
    expect(ConnectError.from(wrongOrg).code).toBe(Code.NotFound);
    const invalid = await grpc.getBillingBalance({ id: "ba-1" }).catch((e: unknown) => e);
    expect(ConnectError.from(invalid).code).toBe(Code.InvalidArgument);
    const revokedClient = createClient(FrontierService, createGrpcTransport({ baseUrl: server.url, interceptors: [basicAuth(revoked.basic)] }));
    const denied = await revokedClient.getBillingBalance({ id: FUNDED }).catch((e: unknown) => e);
    expect(ConnectError.from(denied).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(denied).rawMessage).toBe("not authenticated: invalid client id or client secret");
    const web = createClient(FrontierService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [basicAuth(orgA.basic)] }));
    expect((await web.getBillingBalance({ id: BIG })).balance?.amount).toBe(9007199254740993n);
  });
});

describe("billing account ids", () => {
  const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("are generated as lowercase random UUIDs for an account with org_id and no id, readable through Frontier", async () => {
    const { account } = await ledger.createAccount({ metadata: { org_id: "org-a" } });
    expect(account!.id).toMatch(V4);
    const r = await get(balancePath("org-a", account!.id), orgA.basic);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ balance: { amount: "0", currency: "VC" } });
    // Accounts outside Frontier keep Tally's own ids.
    const { account: plain } = await ledger.createAccount({});
    expect(plain!.id).toMatch(/^acct_[0-9a-z]{26}$/);
  });

  it("refuse a client-chosen id that is not a UUID when the account has org_id", async () => {
    const err = await ledger.createAccount({ id: "ba-1", metadata: { org_id: "org-a" } }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(err).rawMessage).toBe(
      "id must be a UUID for an account with org_id metadata (a Frontier billing account); leave it empty to have one generated",
    );
    const missing = await ledger.getAccount({ id: "ba-1" }).catch((e: unknown) => e);
    expect(ConnectError.from(missing).code).toBe(Code.NotFound);
    // Without org_id the same id is an ordinary account.
    expect((await ledger.createAccount({ id: "ba-1" })).account?.id).toBe("ba-1");
  });

  it("take a client's UUID as given, in either case", async () => {
    const id = "5D1F0E6A-9B2C-4E8F-A1B3-C4D5E6F70809";
    expect((await ledger.createAccount({ id, metadata: { org_id: "org-a" } })).account?.id).toBe(id);
    expect((await get(balancePath("org-a", id), orgA.basic)).status).toBe(200);
  });
});

describe("frontier_client credentials", () => {
  it("need an org_id and refuse an account, scopes or a public key", async () => {
    const cases = [
      { kind: "frontier_client" },
      { kind: "frontier_client", orgId: "org-a", accountId: FUNDED },
      { kind: "frontier_client", orgId: "org-a", scopes: ["read"] },
      { kind: "frontier_client", orgId: "org-a", publicKey: new Uint8Array(32) },
      { kind: "frontier_client", orgId: "org-a", id: "has:colon" },
      // Client ids are server-wide: a tenant never chooses one.
      { kind: "frontier_client", orgId: "org-a", id: "client-a2" },
    ];
    for (const c of cases) {
      const err = await admin.createCredential(c).catch((e: unknown) => e);
      expect(ConnectError.from(err).code, JSON.stringify(c, (_k, v: unknown) => (v instanceof Uint8Array ? "bytes" : v))).toBe(Code.InvalidArgument);
    }
  });

  it("issue a secret that works with its own client id only", async () => {
    const c = await admin.createCredential({ kind: "frontier_client", orgId: "org-a" });
    expect(c.secret).toMatch(/^[0-9a-f]{40}$/);
    expect(c.credential?.id).toMatch(/^[0-9a-f]{20}$/);
    expect(c.credential?.orgId).toBe("org-a");
    const ok = await get(balancePath("org-a", FUNDED), basic(c.credential!.id, c.secret));
    expect(ok.status).toBe(200);
    const swapped = await get(balancePath("org-a", FUNDED), basic(orgB.id, c.secret));
    expect(swapped.status).toBe(401);
  });
});
