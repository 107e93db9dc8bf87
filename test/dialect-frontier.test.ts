import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrontierService } from "../gen/raystack/frontier/v1beta1/frontier_pb.js";
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
let orgB: { basic: string };
let revoked: { basic: string };

const basic = (id: string, secret: string) => "Basic " + Buffer.from(`${id}:${secret}`).toString("base64");

beforeAll(async () => {
  server = await startTestServer({ clock: () => now, dialects: ["frontier"] });
  admin = clientFor(AdminService, server.url, "connect-binary", server.adminKey);
  ledger = clientFor(LedgerService, server.url, "connect-binary", server.adminKey);

  // Billing accounts are Tally accounts attached to an organization by metadata.
  now = T0; // created at .253
  await ledger.createAccount({ id: "ba-empty", metadata: { org_id: "org-a" } });
  now = T0 + 1_000_000n; // 09:54:49.253
  await ledger.createAccount({ id: "ba-funded", metadata: { org_id: "org-a" } });
  await ledger.createAccount({ id: "ba-other-org", metadata: { org_id: "org-b" } });
  await ledger.createAccount({ id: "plain-account", metadata: {} });
  await ledger.createAccount({ id: "ba-big", metadata: { org_id: "org-a" } });
  await ledger.createAccount({ id: "ba-usd", metadata: { org_id: "org-a", balance_currency: "USD" } });
  await ledger.createAccount({ id: "ba-bad-currency", metadata: { org_id: "org-a", balance_currency: "credits" } });
  now = T0 + 2_747_000n; // 09:54:51.000: a whole second, written without fraction
  await ledger.postTransfer({ idempotencyKey: "f1", debitAccountId: "@world", creditAccountId: "ba-funded", asset: "VC", amount: 1000n });
  await ledger.postTransfer({ idempotencyKey: "f2", debitAccountId: "@world", creditAccountId: "ba-other-org", asset: "VC", amount: 77n });
  now = T0 + 3_000_000n; // 09:54:51.253
  await ledger.postTransfer({ idempotencyKey: "f3", debitAccountId: "@world", creditAccountId: "ba-funded", asset: "VC", amount: 500n });
  await ledger.postTransfer({ idempotencyKey: "f4", debitAccountId: "@world", creditAccountId: "ba-big", asset: "VC", amount: 9007199254740993n });
  // A hold: not counted, the amount is the posted balance like every dialect's.
  await ledger.postTransfer({ idempotencyKey: "f5", debitAccountId: "ba-big", creditAccountId: "@world", asset: "VC", amount: 1n, pending: true });
  await ledger.postTransfer({ idempotencyKey: "f6", debitAccountId: "@world", creditAccountId: "ba-usd", asset: "USD", amount: 2_500_000n });

  const a = await admin.createCredential({ kind: "frontier_client", orgId: "org-a", label: "billing worker" });
  orgA = { id: a.credential!.id, secret: a.secret, basic: basic(a.credential!.id, a.secret) };
  const b = await admin.createCredential({ kind: "frontier_client", orgId: "org-b", id: "client-b" });
  orgB = { basic: basic("client-b", b.secret) };
  const r = await admin.createCredential({ kind: "frontier_client", orgId: "org-a" });
  revoked = { basic: basic(r.credential!.id, r.secret) };
  await admin.revokeCredential({ kind: "frontier_client", id: r.credential!.id });
});
afterAll(async () => {
  await server.close();
});

async function get(path: string, authorization?: string, method = "GET"): Promise<{ status: number; text: string; type: string | null }> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(server.url + path, { method, headers });
  return { status: res.status, text: await res.text(), type: res.headers.get("content-type") };
}

const balancePath = (org: string, id: string) => `/v1beta1/organizations/${org}/billing/${id}/balance`;
const NOT_FOUND = '{"code":5,"message":"billing account doesn\'t exist","details":[]}';
const UNAUTHENTICATED_BAD = '{"code":16,"message":"not authenticated: invalid client id or client secret","details":[]}';

describe("GET /v1beta1/organizations/{org_id}/billing/{id}/balance", () => {
  it("reports a new account as amount \"0\" in VC, updated at its creation time", async () => {
    const r = await get(balancePath("org-a", "ba-empty"), orgA.basic);
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    expect(r.text).toBe('{"balance":{"amount":"0","currency":"VC","updated_at":"2024-07-13T09:54:48.253Z"}}');
  });

  it("reports a funded account with the time of its last change", async () => {
    const r = await get(balancePath("org-a", "ba-funded"), orgA.basic);
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("writes int64 digits exactly and does not count open holds", async () => {
    const r = await get(balancePath("org-a", "ba-big"), orgA.basic);
    expect(r.text).toBe('{"balance":{"amount":"9007199254740993","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("reports the asset the account's balance_currency names, in its smallest unit", async () => {
    const r = await get(balancePath("org-a", "ba-usd"), orgA.basic);
    expect(r.text).toBe('{"balance":{"amount":"2500000","currency":"USD","updated_at":"2024-07-13T09:54:51.253Z"}}');
  });

  it("writes a whole-second time without a fraction, as protojson does", async () => {
    const r = await get(balancePath("org-b", "ba-other-org"), orgB.basic);
    expect(r.status).toBe(200);
    expect(r.text).toBe('{"balance":{"amount":"77","currency":"VC","updated_at":"2024-07-13T09:54:51Z"}}');
  });

  it("answers another organization's billing id exactly like a nonexistent one", async () => {
    const foreign = await get(balancePath("org-a", "ba-other-org"), orgA.basic);
    const missing = await get(balancePath("org-a", "no-such-account"), orgA.basic);
    const notBilling = await get(balancePath("org-a", "plain-account"), orgA.basic);
    for (const r of [foreign, missing, notBilling]) {
      expect(r.status).toBe(404);
      expect(r.text).toBe(NOT_FOUND);
    }
  });

  it("answers a path org_id that is not the credential's with the same 404", async () => {
    // Its own account through another org's path, and another org's account through that org's path.
    for (const path of [balancePath("org-b", "ba-funded"), balancePath("org-b", "ba-other-org"), balancePath("org-zzz", "ba-empty")]) {
      const r = await get(path, orgA.basic);
      expect(r.status).toBe(404);
      expect(r.text).toBe(NOT_FOUND);
    }
  });

  it("refuses a request without credentials", async () => {
    const r = await get(balancePath("org-a", "ba-funded"));
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
      const r = await get(balancePath("org-a", "ba-funded"), h);
      expect(r.status, h).toBe(401);
      expect(r.text).toBe(UNAUTHENTICATED_BAD);
    }
  });

  it("refuses a revoked credential", async () => {
    const r = await get(balancePath("org-a", "ba-funded"), revoked.basic);
    expect(r.status).toBe(401);
    expect(r.text).toBe(UNAUTHENTICATED_BAD);
  });

  it("lets a Tally account-scoped key read its own billing account only; refuses an admin key", async () => {
    const { secret } = await admin.createApiKey({ scope: KeyScope.ACCOUNT_READ, accountId: "ba-funded" });
    const own = await get(balancePath("org-a", "ba-funded"), `Bearer ${secret}`);
    expect(own.status).toBe(200);
    expect(own.text).toBe('{"balance":{"amount":"1500","currency":"VC","updated_at":"2024-07-13T09:54:51.253Z"}}');
    const other = await get(balancePath("org-a", "ba-empty"), `Bearer ${secret}`);
    expect(other.status).toBe(404);
    expect(other.text).toBe(NOT_FOUND);
    const wrongOrg = await get(balancePath("org-b", "ba-funded"), `Bearer ${secret}`);
    expect(wrongOrg.text).toBe(NOT_FOUND);
    const overConnect = await fetch(server.url + "/raystack.frontier.v1beta1.FrontierService/GetBillingBalance", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secret}` },
      body: '{"id":"ba-funded"}',
    });
    expect(await overConnect.text()).toBe('{"balance":{"amount":"1500","currency":"VC","updatedAt":"2024-07-13T09:54:51.253Z"}}');
    const adminKey = await get(balancePath("org-a", "ba-funded"), `Bearer ${server.adminKey}`);
    expect(adminKey.status).toBe(403);
    expect(adminKey.text).toBe(
      '{"code":7,"message":"this method needs a frontier_client credential (HTTP Basic) or an account-scoped API key","details":[]}',
    );
  });

  it("answers a malformed id with 400 and a misconfigured currency with 500, in the envelope", async () => {
    const bad = await get("/v1beta1/organizations/org-a/billing/a%20b/balance", orgA.basic);
    expect(bad.status).toBe(400);
    expect(bad.text).toBe('{"code":3,"message":"id must be 1-128 characters of [A-Za-z0-9_-]","details":[]}');
    const misconfigured = await get(balancePath("org-a", "ba-bad-currency"), orgA.basic);
    expect(misconfigured.status).toBe(500);
    expect(misconfigured.text).toBe('{"code":13,"message":"billing account has an invalid balance_currency in its metadata","details":[]}');
  });

  it("answers another method with 405 and Allow: GET", async () => {
    const res = await fetch(server.url + balancePath("org-a", "ba-funded"), { method: "POST", headers: { authorization: orgA.basic } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect(await res.text()).toBe('{"code":12,"message":"method POST not allowed","details":[]}');
  });

  it("keeps another tenant's billing accounts out of reach", async () => {
    const t = await admin.createTenant({ id: "tenant-b", name: "B" });
    const ledgerB = clientFor(LedgerService, server.url, "connect-binary", t.adminKeySecret);
    await ledgerB.createAccount({ id: "ba-tenant-b", metadata: { org_id: "org-a" } });
    const r = await get(balancePath("org-a", "ba-tenant-b"), orgA.basic);
    expect(r.status).toBe(404);
    expect(r.text).toBe(NOT_FOUND);
  });
});

describe("POST /raystack.frontier.v1beta1.FrontierService/GetBillingBalance (Connect)", () => {
  async function connect(body: string, authorization?: string): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
    if (authorization !== undefined) headers.authorization = authorization;
    const res = await fetch(server.url + "/raystack.frontier.v1beta1.FrontierService/GetBillingBalance", { method: "POST", headers, body });
    return { status: res.status, text: await res.text() };
  }

  it("answers JSON with camelCase names, leaving defaults out as connect-go does", async () => {
    const funded = await connect('{"id": "ba-funded"}', orgA.basic);
    expect(funded.status).toBe(200);
    expect(funded.text).toBe('{"balance":{"amount":"1500","currency":"VC","updatedAt":"2024-07-13T09:54:51.253Z"}}');
    const empty = await connect('{"id":"ba-empty"}', orgA.basic);
    expect(empty.text).toBe('{"balance":{"currency":"VC","updatedAt":"2024-07-13T09:54:48.253Z"}}');
    // An explicit org_id that is the credential's own is accepted.
    const withOrg = await connect('{"id":"ba-funded","orgId":"org-a"}', orgA.basic);
    expect(withOrg.text).toBe(funded.text);
  });

  it("refuses foreign, missing and wrong-org ids alike, and bad credentials", async () => {
    const foreign = await connect('{"id":"ba-other-org"}', orgA.basic);
    const missing = await connect('{"id":"no-such-account"}', orgA.basic);
    const wrongOrg = await connect('{"id":"ba-funded","orgId":"org-b"}', orgA.basic);
    expect(foreign.status).toBe(404);
    expect(foreign.text).toBe(
      '{"code":"not_found","message":"billing account doesn\'t exist","details":[{"type":"tally.ledger.v1.ErrorDetail","debug":{"reason":"billing_account_not_found"},"value":"ChliaWxsaW5nX2FjY291bnRfbm90X2ZvdW5k"}]}',
    );
    expect(missing.text).toBe(foreign.text);
    expect(wrongOrg.text).toBe(foreign.text);
    const noAuth = await connect('{"id":"ba-funded"}');
    expect(noAuth.status).toBe(401);
    // Without any Authorization the Bearer interceptor answers (a Tally key is also accepted here).
    expect(JSON.parse(noAuth.text)).toMatchObject({ code: "unauthenticated" });
    const bad = await connect('{"id":"ba-funded"}', basic(orgA.id, "wrong"));
    expect(bad.status).toBe(401);
    expect(bad.text).toBe(
      '{"code":"unauthenticated","message":"not authenticated: invalid client id or client secret","details":[{"type":"tally.ledger.v1.ErrorDetail","debug":{"reason":"invalid_client_credentials"},"value":"ChppbnZhbGlkX2NsaWVudF9jcmVkZW50aWFscw"}]}',
    );
    const rev = await connect('{"id":"ba-funded"}', revoked.basic);
    expect(rev.text).toBe(bad.text);
    const empty = await connect("{}", orgA.basic);
    expect(empty.status).toBe(400);
    expect(empty.text).toBe(
      '{"code":"invalid_argument","message":"id is required: the billing account to get the balance for","details":[{"type":"tally.ledger.v1.ErrorDetail","debug":{"reason":"missing_id"},"value":"CgptaXNzaW5nX2lk"}]}',
    );
  });

  /** What a current Frontier client sends: Basic auth on every call. */
  const basicAuth = (header: string): Interceptor => (next) => (req) => {
    req.header.set("authorization", header);
    return next(req);
  };

  it("serves a connect-es client", async () => {
    const client = createClient(
      FrontierService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [basicAuth(orgA.basic)] }),
    );
    const { balance } = await client.getBillingBalance({ id: "ba-big" });
    expect(balance?.amount).toBe(9007199254740993n);
    expect(balance?.currency).toBe("VC");
    expect(balance?.updatedAt?.seconds).toBe(1_720_864_491n);
    expect(balance?.updatedAt?.nanos).toBe(253_000_000);
    const err = await client.getBillingBalance({ id: "ba-other-org" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.NotFound);
  });

  it("serves gRPC", async () => {
    const grpc = createClient(FrontierService, createGrpcTransport({ baseUrl: server.url, interceptors: [basicAuth(orgA.basic)] }));
    const { balance } = await grpc.getBillingBalance({ id: "ba-funded" });
    expect(balance?.amount).toBe(1500n);
    expect(balance?.currency).toBe("VC");
    expect(balance?.updatedAt?.seconds).toBe(1_720_864_491n);
    const wrongOrg = await grpc.getBillingBalance({ id: "ba-funded", orgId: "org-b" }).catch((e: unknown) => e);
    expect(ConnectError.from(wrongOrg).code).toBe(Code.NotFound);
    const revokedClient = createClient(FrontierService, createGrpcTransport({ baseUrl: server.url, interceptors: [basicAuth(revoked.basic)] }));
    const denied = await revokedClient.getBillingBalance({ id: "ba-funded" }).catch((e: unknown) => e);
    expect(ConnectError.from(denied).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(denied).rawMessage).toBe("not authenticated: invalid client id or client secret");
  });
});

describe("frontier_client credentials", () => {
  it("need an org_id and refuse an account, scopes or a public key", async () => {
    const cases = [
      { kind: "frontier_client" },
      { kind: "frontier_client", orgId: "org-a", accountId: "ba-funded" },
      { kind: "frontier_client", orgId: "org-a", scopes: ["read"] },
      { kind: "frontier_client", orgId: "org-a", publicKey: new Uint8Array(32) },
      { kind: "frontier_client", orgId: "org-a", id: "has:colon" },
    ];
    for (const c of cases) {
      const err = await admin.createCredential(c).catch((e: unknown) => e);
      expect(ConnectError.from(err).code, JSON.stringify(c, (_k, v: unknown) => (v instanceof Uint8Array ? "bytes" : v))).toBe(Code.InvalidArgument);
    }
  });

  it("issue a secret that works with its own client id only", async () => {
    const c = await admin.createCredential({ kind: "frontier_client", orgId: "org-a", id: "client-a2" });
    expect(c.secret).toMatch(/^[0-9a-f]{40}$/);
    expect(c.credential?.orgId).toBe("org-a");
    const ok = await get(balancePath("org-a", "ba-funded"), basic("client-a2", c.secret));
    expect(ok.status).toBe(200);
    const swapped = await get(balancePath("org-a", "ba-funded"), basic("client-b", c.secret));
    expect(swapped.status).toBe(401);
  });
});
