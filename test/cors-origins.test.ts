import { describe, expect, it } from "vitest";
import { allowedOrigin, parseCorsOrigins } from "../src/transport/cors/origins.js";

/** The origin rule on its own: what may be configured, and which Origin headers it matches. */
describe("CORS origins", () => {
  it("are off when none are given", () => {
    expect(parseCorsOrigins([])).toBeUndefined();
  });

  it("match an exact origin exactly, and echo it", () => {
    const policy = parseCorsOrigins(["https://app.example.com", " http://localhost:3000 ", "http://[::1]:8080"])!;
    expect(allowedOrigin(policy, "https://app.example.com")).toBe("https://app.example.com");
    expect(allowedOrigin(policy, "http://localhost:3000")).toBe("http://localhost:3000");
    expect(allowedOrigin(policy, "http://[::1]:8080")).toBe("http://[::1]:8080");
    // Browsers send the serialised origin: any other spelling, port, scheme or host is another origin.
    for (const o of [
      "https://app.example.com/",
      "https://APP.example.com",
      "https://app.example.com:443",
      "http://app.example.com",
      "https://app.example.com.evil.com",
      "https://evil-app.example.com",
      "https://sub.app.example.com",
      "http://localhost:3001",
      "null",
      "",
      "https://app.example.com, https://evil.com",
    ]) {
      expect(allowedOrigin(policy, o), o).toBeUndefined();
    }
    expect(allowedOrigin(policy, undefined)).toBeUndefined();
  });

  it("are kept in the form a browser sends: case, default port and a lone trailing slash normalised", () => {
    const policy = parseCorsOrigins(["HTTPS://App.Example.COM:443", "http://localhost:80/"])!;
    expect(policy).toEqual({ kind: "list", origins: new Set(["https://app.example.com", "http://localhost"]) });
  });

  it('take "*" alone as any origin, answered "*"', () => {
    const policy = parseCorsOrigins(["*"])!;
    expect(policy).toEqual({ kind: "any" });
    expect(allowedOrigin(policy, "https://anything.example")).toBe("*");
    expect(allowedOrigin(policy, "null")).toBe("*");
    // Not a cross-origin browser call: nothing to answer.
    expect(allowedOrigin(policy, undefined)).toBeUndefined();
  });

  it("refuse what is not exactly an origin, saying why", () => {
    const cases: readonly (readonly [string[], RegExp])[] = [
      [["http://x/path"], /"http:\/\/x\/path" is not an origin: an origin has no path, query or fragment; did you mean "http:\/\/x"\?/],
      [["https://a.example?x=1"], /no path, query or fragment/],
      [["https://a.example#top"], /no path, query or fragment/],
      [["app.example.com"], /write it as scheme:\/\/host\[:port\]/],
      [["localhost:3000"], /only http and https/],
      [["ftp://a.example"], /only http and https/],
      [["https://*.example.com"], /wildcards are not supported/],
      [["https://user:pw@a.example"], /no user or password/],
      [["null"], /"null" is what sandboxed and file: pages send/],
      [["https://a.example", ""], /empty entry/],
      [["*", "https://a.example"], /"\*" allows every origin and cannot be combined/],
    ];
    for (const [entries, message] of cases) expect(() => parseCorsOrigins(entries), entries.join(",")).toThrow(message);
  });
});
