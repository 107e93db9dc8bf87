import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isUuid } from "../src/dialects/frontier/service.js";

// protoc-gen-validate's string.uuid rule, which Frontier's proto puts on
// billing ids: ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$.

describe("isUuid", () => {
  it("accepts the hyphenated 8-4-4-4-12 form in any case, of any version or variant", () => {
    for (const s of [
      "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e01",
      "2F1C9A40-6B1E-4C3A-9D57-0A1B2C3D4E01",
      "2f1C9a40-6B1e-4c3A-9d57-0a1B2c3D4e01",
      "00000000-0000-0000-0000-000000000000", // nil
      "ffffffff-ffff-ffff-ffff-ffffffffffff", // max
      "018f3f4e-2b6a-7c1d-8e9f-0a1b2c3d4e5f", // version 7
      "2f1c9a40-6b1e-0c3a-0d57-0a1b2c3d4e01", // no valid version or variant: PGV checks the form only
      randomUUID(),
    ]) {
      expect(isUuid(s), s).toBe(true);
    }
  });

  it("refuses every other form", () => {
    const u = "2f1c9a40-6b1e-4c3a-9d57-0a1b2c3d4e01";
    for (const s of [
      "",
      "ba-1",
      u.replaceAll("-", ""), // unhyphenated
      `{${u}}`,
      `urn:uuid:${u}`,
      u.slice(1),
      u + "0",
      ` ${u}`,
      `${u}\n`,
      u.replace("2f", "g2"), // not hex
      "2f1c9a406-b1e-4c3a-9d57-0a1b2c3d4e01", // hyphens misplaced
      "2f1c9a40_6b1e_4c3a_9d57_0a1b2c3d4e01",
    ]) {
      expect(isUuid(s), JSON.stringify(s)).toBe(false);
    }
  });
});
