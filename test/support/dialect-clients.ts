/**
 * Minimal vendor-side clients for the four REST dialects, written from
 * docs/dialects/*.md (not from the server's code): each signs in the way the
 * vendor's own clients do and returns amounts as exact bigints, never through
 * a double (the bodies are read as text and the integers cut out of it).
 */
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { request } from "node:http";
import type { IncomingMessage } from "node:http";

/** The integer JSON member `name` of `text` (a number or a decimal string), exactly. */
export function intField(text: string, name: string): bigint {
  const m = new RegExp(`"${name}":"?(-?\\d+)"?`).exec(text);
  if (!m) throw new Error(`no integer member ${JSON.stringify(name)} in ${text}`);
  return BigInt(m[1]!);
}

/** Every integer JSON member `name` of `text`, in order. */
export function intFields(text: string, name: string): bigint[] {
  return [...text.matchAll(new RegExp(`"${name}":"?(-?\\d+)"?`, "g"))].map((m) => BigInt(m[1]!));
}

async function fetchText(url: string, init: RequestInit): Promise<string> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${init.method ?? "GET"} ${url}: ${res.status} ${text}`);
  return text;
}

// ---- Triport: HMAC-signed session cookie ----

/** `triport_session=<payload>.<sig>` for `sub`, as docs/dialects/triport.md defines it. */
export function triportCookie(secretB64url: string, kid: string, sub: string, ttlSeconds = 3600): string {
  const key = Buffer.from(secretB64url, "base64url");
  const payload = Buffer.from(JSON.stringify({ kid, sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds }), "utf8").toString("base64url");
  return `triport_session=${payload}.${createHmac("sha256", key).update(payload).digest("base64url")}`;
}

/** GET /v1/balance: amount_micro (posted, micro-USD). */
export async function triportBalance(baseUrl: string, cookie: string): Promise<bigint> {
  return intField(await fetchText(`${baseUrl}/v1/balance`, { headers: { cookie } }), "amount_micro");
}

/** One SSE frame of /v1/balance/events. */
export interface SseFrame {
  readonly id: bigint;
  readonly event: string;
  readonly data: string;
}

/**
 * An open GET /v1/balance/events stream, parsed frame by frame as they arrive
 * (keep-alive comments skipped). `onFrame` sees each frame in order.
 */
export class TriportEvents {
  private buf = "";
  private ended = false;
  private error: Error | undefined;
  private readonly res: IncomingMessage;

  private constructor(res: IncomingMessage, onFrame: (f: SseFrame) => void) {
    this.res = res;
    res.setEncoding("utf8");
    res.on("data", (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf("\n\n"); i >= 0; i = this.buf.indexOf("\n\n")) {
        const block = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        if (block.startsWith(":")) continue;
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          const c = line.indexOf(": ");
          if (c > 0) fields.set(line.slice(0, c), line.slice(c + 2));
        }
        try {
          onFrame({ id: BigInt(fields.get("id") ?? "-1"), event: fields.get("event") ?? "", data: fields.get("data") ?? "" });
        } catch (e) {
          this.error ??= e instanceof Error ? e : new Error(String(e));
        }
      }
    });
    res.on("end", () => (this.ended = true));
    res.on("error", (e) => (this.error ??= e));
  }

  static open(baseUrl: string, cookie: string, onFrame: (f: SseFrame) => void): Promise<TriportEvents> {
    const u = new URL(baseUrl);
    return new Promise((resolve, reject) => {
      const req = request(
        { host: u.hostname, port: u.port, path: "/v1/balance/events", method: "GET", headers: { accept: "text/event-stream", cookie } },
        (res) => {
          if (res.statusCode !== 200) {
            reject(new Error(`/v1/balance/events: ${res.statusCode}`));
            res.resume();
            return;
          }
          resolve(new TriportEvents(res, onFrame));
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  /** Throws what went wrong on the stream so far (a parse failure, an early end). */
  check(): void {
    if (this.error) throw this.error;
    if (this.ended) throw new Error("the event stream ended");
  }

  close(): void {
    this.res.destroy();
  }
}

// ---- 3PLGuys: Bearer API key ----

/** GET /v0/balance: balance in cents. */
export async function threePlGuysBalance(baseUrl: string, token: string): Promise<bigint> {
  const text = await fetchText(`${baseUrl}/v0/balance`, { headers: { authorization: `Bearer ${token}` } });
  if (!text.includes('"currency":"USD"')) throw new Error(`3PLGuys balance not in USD: ${text}`);
  return intField(text, "balance");
}

/** Every GET /v0/balance/transactions amount (cents), newest first, over all pages of `take`. */
export async function threePlGuysTransactionAmounts(baseUrl: string, token: string, take: number): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let skip = 0; skip < 100_000; skip += take) {
    const text = await fetchText(`${baseUrl}/v0/balance/transactions?skip=${skip}&take=${take}`, { headers: { authorization: `Bearer ${token}` } });
    const page = intFields(text, "amount");
    out.push(...page);
    if (page.length < take) return out;
  }
  throw new Error("3PLGuys transactions did not end");
}

// ---- Blacksheep: Ed25519 request signing ----

/** A Blacksheep signing key: the id, the private key, and the raw 32-byte public key to register. */
export interface BlacksheepKey {
  readonly id: string;
  readonly privateKey: KeyObject;
  readonly raw: Buffer;
}

export function blacksheepKey(id: string): BlacksheepKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { id, privateKey, raw: Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url") };
}

const BS_PATH = "/account.balance.getMany";

/** POST /account.balance.getMany signed with `key`: every listed balance, by code, as exact smallest units. */
export async function blacksheepBalances(baseUrl: string, key: BlacksheepKey): Promise<Map<string, { value: bigint; decimals: number }>> {
  const body = "{}";
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("base64");
  const digest = `sha-256=:${createHash("sha256").update(body, "utf8").digest("base64")}:`;
  const signed = `${key.id.length}:${key.id}:${ts.length}:${ts}:${nonce.length}:${nonce}:POST:${BS_PATH.length}:${BS_PATH}:${digest}`;
  const signature = sign(null, Buffer.from(signed, "utf8"), key.privateKey).toString("base64");
  const text = await fetchText(`${baseUrl}${BS_PATH}`, {
    method: "POST",
    headers: { "Bs-Key-Id": key.id, "Bs-Timestamp": ts, "Bs-Nonce": nonce, "Bs-Signature": signature, "Content-Digest": digest, "Content-Type": "application/json" },
    body,
  });
  const out = new Map<string, { value: bigint; decimals: number }>();
  for (const m of text.matchAll(/"balance":\{"value":"(-?\d+)","code":"([^"]+)","decimals":(\d+)\}/g)) {
    out.set(m[2]!, { value: BigInt(m[1]!), decimals: Number(m[3]!) });
  }
  return out;
}

// ---- Frontier: HTTP Basic client credentials ----

/** GET /v1beta1/organizations/{org}/billing/{id}/balance: amount (exact) and currency. */
export async function frontierBalance(baseUrl: string, clientId: string, secret: string, org: string, id: string): Promise<{ amount: bigint; currency: string }> {
  const text = await fetchText(`${baseUrl}/v1beta1/organizations/${org}/billing/${id}/balance`, {
    headers: { accept: "application/json", authorization: "Basic " + Buffer.from(`${clientId}:${secret}`).toString("base64") },
  });
  const currency = /"currency":"([^"]*)"/.exec(text)?.[1];
  if (currency === undefined) throw new Error(`no currency in ${text}`);
  return { amount: intField(text, "amount"), currency };
}
