import { describe, expect, it } from "vitest";
import { parseServeConfig, toTallyOptions } from "../src/config.js";

describe("connection flags of tally serve", () => {
  it("default to bounds fit for a public port", () => {
    const c = parseServeConfig([], {});
    expect(c).toMatchObject({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      keepAliveTimeoutMs: 5_000,
      idleTimeoutMs: 30_000,
      pingIntervalMs: 30_000,
      maxConnections: undefined,
      maxConnectionsPerAddress: 256,
      tlsMinVersion: "TLSv1.2",
      tlsCiphers: undefined,
    });
    // "auto" leaves the overall limit to the open-file limit.
    expect("maxConnections" in toTallyOptions(c)).toBe(false);
  });

  it("take flags over environment variables", () => {
    const c = parseServeConfig(
      ["--request-timeout-ms", "2000", "--max-connections", "500", "--max-connections-per-address", "0", "--tls-min-version", "TLSv1.3"],
      { TALLY_REQUEST_TIMEOUT_MS: "9000", TALLY_IDLE_TIMEOUT_MS: "1500", TALLY_TLS_CIPHERS: "TLS_AES_256_GCM_SHA384" },
    );
    expect(c).toMatchObject({
      requestTimeoutMs: 2000,
      idleTimeoutMs: 1500,
      maxConnections: 500,
      maxConnectionsPerAddress: 0,
      tlsMinVersion: "TLSv1.3",
      tlsCiphers: "TLS_AES_256_GCM_SHA384",
    });
    expect(toTallyOptions(c)).toMatchObject({ requestTimeoutMs: 2000, maxConnections: 500, maxConnectionsPerAddress: 0, tlsMinVersion: "TLSv1.3" });
  });

  it("refuse values out of range or not canonical", () => {
    expect(() => parseServeConfig(["--idle-timeout-ms", "0"], {})).toThrow(/--idle-timeout-ms must be an integer in 100\.\./);
    expect(() => parseServeConfig(["--max-connections", "0"], {})).toThrow(/--max-connections/);
    expect(() => parseServeConfig(["--max-connections", "1e3"], {})).toThrow(/--max-connections/);
    expect(() => parseServeConfig(["--request-timeout-ms", "-5"], {})).toThrow(/--request-timeout-ms/);
    expect(() => parseServeConfig(["--tls-min-version", "TLSv1.1"], {})).toThrow(/--tls-min-version must be one of TLSv1\.2, TLSv1\.3/);
  });
});
