import { describe, expect, it } from "vitest";
import { newId } from "../src/domain/ids.js";

// Server-made ids (transfers, accounts, credits): readable prefix, creation
// time first so that they sort (and index) in creation order, then 80 random
// bits so that replicas never need to coordinate.
const FORMAT = /^tr_[0-9a-hjkmnp-tv-z]{26}$/;

describe("newId", () => {
  it("is prefix_, 10 characters of time and 16 random characters of lower-case base32", () => {
    for (let i = 0; i < 1000; i++) expect(newId("tr")).toMatch(FORMAT);
  });

  it("sorts by creation time, to the millisecond, as plain strings", () => {
    const times = [0, 1, 31, 32, 1_000, Date.UTC(2026, 11, 2), Date.UTC(2026, 11, 2) + 1, 2 ** 50 - 1];
    const ids = times.map((t) => newId("tr", t));
    expect([...ids].sort()).toEqual(ids);
    // The time part is the same for the same millisecond, and encodes it exactly.
    expect(newId("tr", 1_000).slice(3, 13)).toBe(newId("tr", 1_000).slice(3, 13));
    expect(newId("tr", 0).slice(3, 13)).toBe("0000000000");
    expect(newId("tr", 33).slice(3, 13)).toBe("0000000011");
  });

  it("never repeats, within one millisecond and across the random pool's refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) seen.add(newId("tr", 42));
    expect(seen.size).toBe(100_000);
  });
});
