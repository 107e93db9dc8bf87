import { Credentials } from "../domain/credentials.js";
import { Credits } from "../domain/credits/credits.js";
import { systemClock, Ledger } from "../domain/ledger.js";
import { PageTokens } from "../domain/page-token.js";
import { StreamLimiter } from "../domain/stream-limiter.js";
import { DIALECTS } from "../dialects/index.js";
import type { Command } from "./command.js";
import { STORE_FLAGS, UsageError, required, str, strs } from "./flags.js";
import { requireTenant } from "./key.js";
import { withStore } from "./open-store.js";
import { printJson } from "./output.js";

/** `tally credential create`: a REST dialect credential; its secret (if any) printed once. */
export const credentialCreateCommand: Command = {
  name: "credential create",
  summary: "issue a REST dialect credential and print it (secret shown once)",
  synopsis: "--tenant ID --kind KIND [--account ID] [--org ID] [--scope S]... [--public-key BASE64] [--id ID] [--label TEXT]",
  details: "The kinds are the enabled dialects' credential types; an unknown --kind lists them.",
  flags: {
    ...STORE_FLAGS,
    tenant: { type: "string", value: "ID", help: "the tenant (required)" },
    kind: { type: "string", value: "KIND", help: "credential kind of a dialect (required)" },
    account: { type: "string", value: "ID", help: "account the credential is bound to" },
    org: { type: "string", value: "ID", help: "organisation id, for kinds that have one" },
    scope: { type: "string", multiple: true, value: "S", help: "a scope the credential grants" },
    "public-key": { type: "string", value: "BASE64", help: "public key, for signature-based kinds" },
    id: { type: "string", value: "ID", help: "credential id (default: generated)" },
    label: { type: "string", value: "TEXT", help: "a note kept with the credential" },
  },
  async run({ values }) {
    const tenant = required(values, "tenant");
    const kindName = required(values, "kind");
    return withStore(values, async (store) => {
      await requireTenant(store, tenant);
      const clock = systemClock;
      const ledger = new Ledger({ store, clock });
      const credentials = new Credentials(store, clock);
      const shutdown = new AbortController();
      const kinds = new Map(
        [...DIALECTS.values()].flatMap((make) => make({
            ledger,
            credits: new Credits(store, clock),
            credentials,
            // Only the credential kinds are used here: nothing is paged or signed.
            pageTokens: new PageTokens(new Uint8Array(32)),
            streams: new StreamLimiter(1),
            shutdown: shutdown.signal,
          }).credentialKinds ?? []).map((k) => [k.kind, k]),
      );
      const kind = kinds.get(kindName);
      if (!kind) throw new UsageError(`unknown credential kind "${kindName}"; known: ${[...kinds.keys()].sort().join(", ")}`);
      const publicKey = str(values, "public-key");
      const issued = await kind.issue(tenant, {
        accountId: str(values, "account") ?? "",
        orgId: str(values, "org") ?? "",
        scopes: strs(values, "scope"),
        label: str(values, "label") ?? "",
        publicKey: publicKey ? Buffer.from(publicKey, "base64") : new Uint8Array(0),
        id: str(values, "id") ?? "",
        // The operator, on the database itself: the one issuer that may choose an id.
        issuer: "operator",
      });
      printJson({ kind: issued.record.kind, id: issued.record.id, secret: issued.secret ?? null });
      return 0;
    });
  },
};
