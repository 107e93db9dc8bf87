import * as http from "node:http";
import * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServeConfig, toTallyOptions } from "../src/config.js";
import { DASHBOARD_CSP } from "../src/transport/dashboard.js";
import { startTestServer } from "./support/server.js";
import type { TestServer } from "./support/server.js";

/** One HTTP/1.1 request, nothing added: the test decides every header. */
function request(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

let server: TestServer;
let off: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  off = await startTestServer({ ui: false });
});
afterAll(async () => {
  await server.close();
  await off.close();
});

describe("the dashboard's HTTP side", () => {
  it("serves the page with no-cache, an ETag, a strict CSP and nosniff, and only external scripts", async () => {
    const r = await request(`${server.url}/ui/`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(r.headers["cache-control"]).toBe("no-cache");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["etag"]).toMatch(/^"[\w-]+"$/);
    const csp = r.headers["content-security-policy"];
    expect(csp).toBe(DASHBOARD_CSP);
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|data:|\*/);
    const html = r.body.toString();
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toMatch(/src="assets\/app-[A-Z0-9]{8}\.js"/);
    expect(html).not.toMatch(/<script\b[^>]*>[^<]+<\/script>/);
    expect(html).not.toMatch(/\son\w+=/);
    expect((await request(`${server.url}/ui/index.html`)).body).toEqual(r.body);
  });

  it("serves hashed assets immutable, with their content types, gzip when accepted, and no eval in the bundle", async () => {
    const html = (await request(`${server.url}/ui/`)).body.toString();
    const names = [...html.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(names.map((n) => n.replace(/-[A-Z0-9]{8}\./, "-HASH."))).toEqual(["assets/icon-HASH.svg", "assets/styles-HASH.css", "assets/app-HASH.js"]);
    const types: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8", svg: "image/svg+xml" };
    for (const name of names) {
      const plain = await request(`${server.url}/ui/${name}`);
      expect(plain.status).toBe(200);
      expect(plain.headers["content-type"]).toBe(types[name.slice(name.lastIndexOf(".") + 1)]);
      expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(plain.headers["x-content-type-options"]).toBe("nosniff");
      expect(plain.headers["content-encoding"]).toBeUndefined();
      expect(plain.headers["vary"]).toBe("accept-encoding");
      const zipped = await request(`${server.url}/ui/${name}`, { "accept-encoding": "br, gzip;q=0.8" });
      expect(zipped.headers["content-encoding"]).toBe("gzip");
      expect(zipped.headers["etag"]).not.toBe(plain.headers["etag"]);
      expect(gunzipSync(zipped.body)).toEqual(plain.body);
      const refused = await request(`${server.url}/ui/${name}`, { "accept-encoding": "gzip;q=0" });
      expect(refused.headers["content-encoding"]).toBeUndefined();
    }
    const js = (await request(`${server.url}/ui/${names.find((n) => n.endsWith(".js"))!}`)).body.toString();
    // The CSP allows neither: the bundle must not need them.
    expect(js).not.toMatch(/\beval\(|new Function\(/);
  });

  it("answers 304 to a matching If-None-Match, HEAD without a body, 308 for /ui, 405 for other methods, 404 elsewhere", async () => {
    const first = await request(`${server.url}/ui/`);
    const again = await request(`${server.url}/ui/`, { "if-none-match": `"other", ${first.headers["etag"]}` });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await request(`${server.url}/ui/`, {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(first.body.length));
    expect(head.body.length).toBe(0);
    const redirect = await request(`${server.url}/ui?protocol=grpc-web`);
    expect(redirect.status).toBe(308);
    expect(redirect.headers["location"]).toBe("/ui/?protocol=grpc-web");
    const post = await request(`${server.url}/ui/`, {}, "POST");
    expect(post.status).toBe(405);
    expect(post.headers["allow"]).toBe("GET, HEAD");
    const missing = await request(`${server.url}/ui/assets/app-00000000.js`);
    expect(missing.status).toBe(404);
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
    expect(missing.headers["cache-control"]).toBe("no-store");
    // Not under /ui/: the front door's own 404.
    expect((await request(`${server.url}/uix`)).body.toString()).toContain("not_found");
  });

  it("serves over HTTP/2 too", async () => {
    const session = http2.connect(server.url);
    try {
      const { status, type } = await new Promise<{ status: number; type: string }>((resolve, reject) => {
        const s = session.request({ ":path": "/ui/" });
        s.on("response", (h) => resolve({ status: Number(h[":status"]), type: String(h["content-type"]) }));
        s.on("error", reject);
        s.resume();
      });
      expect(status).toBe(200);
      expect(type).toBe("text/html; charset=utf-8");
    } finally {
      session.close();
    }
  });

  it("is not served when switched off", async () => {
    const r = await request(`${off.url}/ui/`);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body.toString())).toEqual({ code: "not_found", message: "no route for GET /ui/" });
  });
});

describe("--no-ui", () => {
  it("leaves the dashboard on by default; the flag or TALLY_NO_UI=true switches it off, and the flag wins", () => {
    expect(parseServeConfig([], {}).ui).toBe(true);
    expect(parseServeConfig(["--no-ui"], {}).ui).toBe(false);
    expect(parseServeConfig([], { TALLY_NO_UI: "true" }).ui).toBe(false);
    expect(parseServeConfig([], { TALLY_NO_UI: "false" }).ui).toBe(true);
    expect(parseServeConfig(["--no-ui"], { TALLY_NO_UI: "false" }).ui).toBe(false);
    expect(toTallyOptions(parseServeConfig(["--no-ui"], {})).ui).toBe(false);
    expect(() => parseServeConfig([], { TALLY_NO_UI: "yes" })).toThrow(/TALLY_NO_UI must be true or false/);
    expect(() => parseServeConfig(["--no-ui=true"], {})).toThrow();
  });
});
