import { create } from "@bufbuild/protobuf";
import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import type { Principal } from "../../domain/access.js";
import type { AccountIdRule } from "../../domain/ids.js";
import { validateAssetCode } from "../../domain/asset.js";
import { LedgerError, invalidArgument } from "../../domain/errors.js";
import type { Ledger } from "../../domain/ledger.js";
import type { Account } from "../../domain/model.js";
import { timestampFromMicros } from "../../services/convert.js";
import { principalOf } from "../../services/principal.js";
import { FrontierService } from "../../../gen/raystack/frontier/v1beta1/frontier_pb.js";
import type { GetBillingBalanceRequest, GetBillingBalanceResponse } from "../../../gen/raystack/frontier/v1beta1/frontier_pb.js";
import { BillingAccount_BalanceSchema } from "../../../gen/raystack/frontier/v1beta1/models_pb.js";
import { FRONTIER_CLIENT } from "./auth.js";

/** Account metadata key that attaches a Tally account to a Frontier organization. */
export const ORG_METADATA_KEY = "org_id";
/** Account metadata key naming the asset a billing account's balance is kept in. */
export const CURRENCY_METADATA_KEY = "balance_currency";
/** Frontier's virtual credits: the asset when the account names none. */
export const DEFAULT_CURRENCY = "VC";

/**
 * protoc-gen-validate's `string.uuid` rule, which Frontier's proto puts on
 * billing ids: 8-4-4-4-12 hexadecimal digits, hyphenated, in either case,
 * of any version or variant (PGV's pattern is
 * `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`).
 * No braces, no `urn:uuid:` prefix, no unhyphenated form: PGV refuses those too.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `s` passes protoc-gen-validate's `string.uuid` rule. */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}

/**
 * FrontierService's Connect JSON, as upstream Frontier's own Connect codec
 * writes it: protojson with UseProtoNames (`updated_at`, not `updatedAt`)
 * and zero values left out. Requests are read in either spelling (`org_id`
 * and `orgId`), as protojson reads them. gRPC and binary Connect do not use
 * it; the REST route keeps its own profile (frontier.proto).
 */
export const FRONTIER_CONNECT_JSON: Partial<JsonReadOptions & JsonWriteOptions> = { useProtoFieldName: true };

/**
 * Why a billing id was refused: protoc-gen-validate's own words for the
 * `string.uuid` rule on GetBillingBalanceRequest.id, as a Frontier server
 * validating its requests reports them.
 */
const INVALID_BILLING_ID = "invalid GetBillingBalanceRequest.Id: value must be a valid UUID | caused by: invalid uuid format";

/**
 * Billing accounts (accounts with `org_id` metadata) have UUID ids, since
 * Frontier's clients can name no other: one is generated (random, version 4,
 * lowercase) when none is given, and a client's id that is not a UUID is
 * refused rather than creating an account no Frontier client could read.
 */
export const billingAccountIds: AccountIdRule = {
  applies: (metadata) => Boolean(metadata[ORG_METADATA_KEY]),
  generate: () => randomUUID(),
  check(id) {
    if (!isUuid(id)) {
      throw invalidArgument(
        "invalid_billing_account_id",
        `id must be a UUID for an account with ${ORG_METADATA_KEY} metadata (a Frontier billing account); leave it empty to have one generated`,
        { field: "id" },
      );
    }
  },
};

/**
 * One message for every billing account the caller cannot see: nonexistent,
 * another organization's, another tenant's, or reached through the wrong
 * organization in the path. Identical bodies leave no existence oracle.
 */
function billingAccountNotFound(): LedgerError {
  return new LedgerError("not_found", "billing_account_not_found", "billing account doesn't exist");
}

/** What a caller may read: one organization's billing accounts, or one account. */
type Reach = { readonly orgId: string; readonly accountId?: undefined } | { readonly orgId?: undefined; readonly accountId: string };

/**
 * A frontier_client credential acts for its organization; a Tally
 * account-scoped key acts for its own account. Anything else (an admin key,
 * another dialect's credential) is refused before any lookup, so the refusal
 * says nothing about which ids exist.
 */
function reachOf(p: Principal): Reach {
  if (p.credential?.kind === FRONTIER_CLIENT && p.credential.orgId) return { orgId: p.credential.orgId };
  if (p.credential === undefined && p.scope === "account_read" && p.accountId !== null) return { accountId: p.accountId };
  throw new LedgerError(
    "permission_denied",
    "frontier_client_required",
    "this method needs a frontier_client credential (HTTP Basic) or an account-scoped API key",
  );
}

/** Reads the balance of a billing account the caller may see. */
async function getBillingBalance(ledger: Ledger, req: GetBillingBalanceRequest, ctx: HandlerContext): Promise<Partial<GetBillingBalanceResponse>> {
  const p = principalOf(ctx);
  const reach = reachOf(p);
  if (req.id === "") throw invalidArgument("missing_id", "id is required: the billing account to get the balance for");
  // Frontier's proto rule, checked before any lookup: the refusal depends on the id's form alone.
  if (!isUuid(req.id)) throw invalidArgument("invalid_id", INVALID_BILLING_ID);
  // The path's org_id (optional over Connect/gRPC) must be the caller's own.
  if (req.orgId !== "" && reach.orgId !== undefined && req.orgId !== reach.orgId) throw billingAccountNotFound();
  if (reach.accountId !== undefined && req.id !== reach.accountId) throw billingAccountNotFound();
  const account = await findBillingAccount(ledger, p.tenantId, req.id);
  const accountOrg = account.metadata[ORG_METADATA_KEY]!;
  if (reach.orgId !== undefined && accountOrg !== reach.orgId) throw billingAccountNotFound();
  if (req.orgId !== "" && req.orgId !== accountOrg) throw billingAccountNotFound();

  const currency = account.metadata[CURRENCY_METADATA_KEY] || DEFAULT_CURRENCY;
  try {
    validateAssetCode(currency);
  } catch {
    throw new LedgerError("internal", "invalid_balance_currency", `billing account has an invalid ${CURRENCY_METADATA_KEY} in its metadata`);
  }
  const balance = await ledger.getBalance(p.tenantId, account.id, currency);
  return {
    balance: create(BillingAccount_BalanceSchema, {
      // What can be spent now: posted credits less holds, which Frontier's own
      // balance (it has no holds) equals.
      // Posted, like every other dialect: an open hold is not money spent yet.
      amount: balance.posted,
      currency,
      // The ledger's row time; an account with no history reports its creation time.
      updatedAt: timestampFromMicros(balance.updatedAt),
    }),
  };
}

/** An account of the tenant that is attached to an organization, or not_found. */
async function findBillingAccount(ledger: Ledger, tenantId: string, id: string): Promise<Account> {
  let account: Account;
  try {
    account = await ledger.getAccount(tenantId, id);
  } catch (e) {
    if (e instanceof LedgerError && e.code === "not_found") throw billingAccountNotFound();
    throw e;
  }
  // Only accounts attached to an organization are billing accounts (this also
  // keeps system accounts such as @world out of reach).
  if (!account.metadata[ORG_METADATA_KEY]) throw billingAccountNotFound();
  return account;
}

/** Registers FrontierService's handlers over the ledger. */
export function registerFrontierService(router: ConnectRouter, ledger: Ledger): void {
  router.service(
    FrontierService,
    { getBillingBalance: (req, ctx) => getBillingBalance(ledger, req, ctx) },
    // connect-es's per-service codec options; Tally's lean path honours them too.
    { jsonOptions: FRONTIER_CONNECT_JSON },
  );
}
