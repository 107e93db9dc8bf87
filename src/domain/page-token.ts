import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { invalidArgument } from "./errors.js";

/**
 * Opaque, tamper-evident page tokens. A token carries the cursor, the tenant
 * and a digest of the query it belongs to, signed with HMAC-SHA256 under a key
 * kept in the database (so every replica accepts every other's tokens). A
 * forged, altered, foreign or re-targeted token is refused with one message.
 */
export class PageTokens {
  constructor(private readonly key: Uint8Array) {}

  /** A fresh random signing key, as stored in the database. */
  static newKey(): string {
    return randomBytes(32).toString("base64url");
  }

  /** Signs a cursor for (tenant, query). */
  seal(tenantId: string, query: readonly string[], cursor: string): string {
    const body = Buffer.from(JSON.stringify([1, cursor, queryDigest(tenantId, query)])).toString("base64url");
    return `${body}.${this.sign(body)}`;
  }

  /** Returns the cursor of a token issued for this (tenant, query), or refuses it. */
  open(token: string, tenantId: string, query: readonly string[]): string {
    const invalid = () => invalidArgument("invalid_page_token", "page_token is invalid for this request");
    if (token.length > 512) throw invalid();
    const dot = token.indexOf(".");
    if (dot <= 0) throw invalid();
    const body = token.slice(0, dot);
    // Compared as text, not decoded: Node's base64url decoder skips stray
    // characters and padding, which would let one token have many spellings.
    const mac = Buffer.from(token.slice(dot + 1), "utf8");
    const expected = Buffer.from(this.sign(body), "utf8");
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw invalid();
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    } catch {
      throw invalid();
    }
    if (!Array.isArray(parsed) || parsed[0] !== 1 || typeof parsed[1] !== "string" || parsed[2] !== queryDigest(tenantId, query)) {
      throw invalid();
    }
    return parsed[1];
  }

  private sign(body: string): string {
    return createHmac("sha256", this.key).update(body).digest("base64url");
  }
}

function queryDigest(tenantId: string, query: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify([tenantId, ...query])).digest("base64url").slice(0, 22);
}
