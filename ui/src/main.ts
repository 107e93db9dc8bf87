import { TransferStatus } from "../../gen/tally/ledger/v1/ledger_pb.js";
import { accountView } from "./account-view.js";
import { accountsView } from "./accounts-view.js";
import { AssetScales } from "./asset-scales.js";
import { createTallyClients } from "./client.js";
import type { TallyWebClients } from "./client.js";
import { errorText } from "./context.js";
import type { DashboardContext } from "./context.js";
import { fill, h } from "./dom.js";
import { holdsView } from "./holds-view.js";
import { journalView } from "./journal-view.js";
import { loginView, protocolPicker } from "./login-view.js";
import { clearSession, loadSession, preferredProtocol, saveSession } from "./session.js";
import type { Session } from "./session.js";
import { transferForm } from "./transfer-form.js";
import { verifyView } from "./verify-view.js";

const root = document.getElementById("app")!;
/** The page shown now; aborting it stops its streams and drops its late answers. */
let shown: AbortController | undefined;

const saved = loadSession();
if (saved === undefined) showLogin();
else void openDashboard(saved);

function showLogin(error?: string): void {
  shown?.abort();
  fill(
    root,
    loginView(preferredProtocol(location.search), error, (session) => {
      saveSession(session);
      void openDashboard(session);
    }),
  );
}

/**
 * Whether the key is an account_read key, and a check of the key (a bad one
 * fails here as unauthenticated). Tally has no "who am I" call; ListAccounts
 * tells without a failing probe: an account key lists exactly its own
 * account, whose id never starts with "@", while an admin key's listing
 * always includes the tenant's system account "@world", so it holds either
 * more than one account or just "@world".
 */
async function isReadOnly(clients: TallyWebClients, signal: AbortSignal): Promise<boolean> {
  const r = await clients.ledger.listAccounts({ pageSize: 2 }, { signal });
  return r.accounts.length === 1 && r.nextPageToken === "" && !r.accounts[0]!.id.startsWith("@");
}

async function openDashboard(session: Session): Promise<void> {
  shown?.abort();
  const page = new AbortController();
  shown = page;
  const clients = createTallyClients({ baseUrl: location.origin, apiKey: session.apiKey, protocol: session.protocol });
  fill(root, h("p", { class: "hint" }, "Opening…"));
  let readOnly: boolean;
  try {
    readOnly = await isReadOnly(clients, page.signal);
  } catch (e) {
    if (page.signal.aborted) return;
    // Whatever went wrong, the key is not kept: the form shows why and takes another.
    clearSession();
    return showLogin(errorText(e));
  }
  if (page.signal.aborted) return;

  const notice = h("p", { class: "notice", "aria-live": "polite", "data-testid": "notice" });
  const ctx: DashboardContext = {
    clients,
    scales: new AssetScales(() => clients.ledger.listAssets({}, { signal: page.signal }).then((r) => r.assets)),
    readOnly,
    signal: page.signal,
    notify(message, kind = "info") {
      notice.dataset.kind = kind;
      notice.textContent = message;
    },
  };
  await ctx.scales.load().catch((e: unknown) => ctx.notify(`assets: ${errorText(e)}`, "error"));

  const holds = holdsView(ctx, (t) => accounts.refresh([t.debitAccountId, t.creditAccountId]));
  const journal = journalView(ctx, (entries) => holds.saw(entries));
  const account = accountView(
    ctx,
    {
      onBalances: (id, balances) => accounts.show(id, balances),
      onChange: (_id, change) => change.transaction !== undefined && journal.live(change.transaction),
      onLocked: (a) => accounts.setLocked(a),
    },
    readOnly ? [journal.element] : [holds.element, journal.element],
  );
  const form = readOnly
    ? undefined
    : transferForm(ctx, (t) => {
        accounts.refresh([t.debitAccountId, t.creditAccountId]);
        if (t.status === TransferStatus.PENDING) holds.add(t);
        form?.suggest(accounts.ids(), ctx.scales.codes());
      });
  const accounts = accountsView(ctx, (a) => {
    account.open(a);
    journal.open(a.id);
    form?.suggestFrom(a.id);
  });

  const scope = h("span", { class: "badge", "data-testid": "scope" }, readOnly ? "read-only key" : "admin key");
  const header = h(
    "header",
    { class: "top" },
    h("h1", {}, "Tally"),
    scope,
    h(
      "label",
      {},
      "Protocol ",
      protocolPicker(session.protocol, (protocol) => {
        const next = { ...session, protocol };
        saveSession(next);
        void openDashboard(next);
      }),
    ),
    h(
      "button",
      {
        type: "button",
        "data-testid": "logout",
        onclick: () => {
          clearSession();
          showLogin();
        },
      },
      "Log out",
    ),
  );
  fill(
    root,
    header,
    notice,
    h(
      "div",
      { class: "layout", "data-testid": "dashboard", "data-protocol": session.protocol, "data-read-only": String(readOnly) },
      accounts.element,
      account.element,
      readOnly ? null : h("aside", { class: "tools" }, form!.element, verifyView(ctx)),
    ),
  );
  try {
    await accounts.load();
  } catch (e) {
    if (!page.signal.aborted) ctx.notify(`accounts: ${errorText(e)}`, "error");
    return;
  }
  if (readOnly) scope.textContent = `read-only key: ${accounts.ids()[0] ?? "?"}`;
  form?.suggest(accounts.ids(), ctx.scales.codes());
}
