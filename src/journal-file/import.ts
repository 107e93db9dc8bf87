import type { Access } from "../domain/access.js";
import type { AccessReader } from "../domain/access-port.js";
import { LIMITS } from "../domain/validate.js";
import type { Ledger, TransferInput, TransferResult } from "../domain/ledger.js";
import type { Account, Transfer } from "../domain/model.js";
import { JOURNAL_FORMAT, JOURNAL_VERSION, JournalFileError, decodeRecord, type AccountRecord, type JournalRecord, type TransferRecord } from "./records.js";

/** The lines of a journal file; called once per pass (an import reads the file twice). */
export type JournalLines = () => AsyncIterable<string>;

/** How far an import has got. */
export interface ImportProgress {
  readonly records: number;
  readonly total: number;
}

/** Options for {@link importJournal}. */
export interface ImportOptions {
  /** Import the file's one tenant section (or a file without tenant records) into this tenant. */
  readonly tenant?: string | undefined;
  /** Transfers per batch (one PostTransfers write); default and most: 1,000. */
  readonly batchSize?: number | undefined;
  readonly onProgress?: ((p: ImportProgress) => void) | undefined;
  /** Recompute every imported tenant's balances afterwards (default true). */
  readonly verify?: boolean | undefined;
  /** A clock for the throughput figures (default: performance.now). */
  readonly now?: (() => number) | undefined;
}

/** What one tenant's import did. */
export interface TenantImport {
  readonly tenant: string;
  /** Set when the import created the tenant: its first admin key, shown once. */
  readonly adminKey?: string;
  accountsCreated: number;
  accountsPresent: number;
  transfersCreated: number;
  transfersPresent: number;
  settlements: number;
  freezes: number;
  verified?: boolean;
}

/** What an import did. */
export interface ImportReport {
  readonly records: number;
  readonly tenants: TenantImport[];
  readonly seconds: number;
  /** Transfers created per second of the import (the apply pass). */
  readonly transfersPerSecond: number;
  /** False when a verify after the import found a difference. */
  readonly ok: boolean;
}

/** What an import writes through: the ledger's and the access rules, as every API call does. */
export interface ImportDeps {
  readonly ledger: Ledger;
  readonly access: Access;
  readonly tenants: Pick<AccessReader, "getTenant">;
}

/**
 * Reads a journal file into a ledger through the ledger's own rules (the
 * effective-time rule included), so that what it accepts is what the API
 * would have accepted. The file is checked whole before anything is written:
 * a truncated or malformed file changes nothing. Importing is idempotent:
 * accounts and transfers already present with the same fields, settlements
 * and freezes already applied, are left as they are; present with other
 * fields, they stop the import with an error naming the line.
 */
export async function importJournal(deps: ImportDeps, lines: JournalLines, options: ImportOptions = {}): Promise<ImportReport> {
  const batchSize = options.batchSize ?? LIMITS.batchSize;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > LIMITS.batchSize) {
    throw new Error(`batch size must be 1 to ${LIMITS.batchSize}`);
  }
  const total = await checkFile(lines, options.tenant);
  const now = options.now ?? (() => performance.now());
  const started = now();
  const run = new ImportRun(deps, options.tenant, batchSize);
  let records = 0;
  let lineNo = 0;
  for await (const text of lines()) {
    lineNo++;
    if (text === "") continue;
    const record = decodeRecord(text, lineNo);
    await run.apply(record, lineNo);
    if (record.type !== "header" && record.type !== "end") records++;
    if (records % 1000 === 0) options.onProgress?.({ records, total });
  }
  await run.flush();
  options.onProgress?.({ records, total });
  const seconds = (now() - started) / 1000;
  let ok = true;
  if (options.verify ?? true) {
    for (const t of run.tenants) {
      t.verified = (await deps.ledger.verify(t.tenant)).ok;
      ok &&= t.verified;
    }
  }
  const created = run.tenants.reduce((n, t) => n + t.transfersCreated, 0);
  return { records, tenants: run.tenants, seconds, transfersPerSecond: seconds > 0 ? Math.round(created / seconds) : 0, ok };
}

/** An error, prefixed with the file line it came from (a batch's first line). */
function atLine(e: unknown, line: number): Error {
  if (e instanceof JournalFileError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const out = new JournalFileError(line, message);
  if (e instanceof Error) out.cause = e;
  return out;
}

/**
 * The first pass: every line parses, the header is first and the end record
 * last with the right count, and the tenant sections fit the options.
 * Returns the number of records.
 */
async function checkFile(lines: JournalLines, tenant: string | undefined): Promise<number> {
  let lineNo = 0;
  let records = 0;
  let header = false;
  let end: bigint | undefined;
  let tenants = 0;
  let before = false;
  for await (const text of lines()) {
    lineNo++;
    if (text === "") continue;
    const r = decodeRecord(text, lineNo);
    if (end !== undefined) throw new JournalFileError(lineNo, "a record after the end record");
    if (!header) {
      if (r.type !== "header") throw new JournalFileError(lineNo, `a journal file starts with a header record ({"type":"header","format":"${JOURNAL_FORMAT}",…})`);
      if (r.format !== JOURNAL_FORMAT || r.version !== JOURNAL_VERSION) {
        throw new JournalFileError(lineNo, `this is ${JSON.stringify(r.format)} version ${r.version}; this Tally reads ${JOURNAL_FORMAT} version ${JOURNAL_VERSION}`);
      }
      header = true;
      continue;
    }
    if (r.type === "header") throw new JournalFileError(lineNo, "a second header record");
    if (r.type === "end") {
      end = r.records;
      if (end !== BigInt(records)) throw new JournalFileError(lineNo, `the end record counts ${end} records, the file holds ${records}`);
      continue;
    }
    records++;
    if (r.type === "tenant") tenants++;
    else if (tenants === 0) before = true;
  }
  if (!header) throw new JournalFileError(0, "the file is empty");
  if (end === undefined) throw new JournalFileError(0, "the file has no end record: it is incomplete (an export that did not finish?)");
  if (tenant === undefined && before) throw new JournalFileError(0, "records come before any tenant record: give --tenant to say where they go");
  if (tenant !== undefined && (tenants > 1 || (tenants === 1 && before))) {
    throw new JournalFileError(0, `--tenant takes a file of one tenant; this one has ${tenants} tenant sections`);
  }
  return records;
}

/** The second pass's state: the tenant being imported and the transfers waiting for their batch. */
class ImportRun {
  readonly tenants: TenantImport[] = [];
  private current: TenantImport | undefined;
  /** Transfers waiting for their batch, with their lines. */
  private batch: { record: TransferRecord; line: number }[] = [];
  /** Accounts waiting to be opened together, with their lines. */
  private openings: { record: AccountRecord; line: number }[] = [];

  constructor(
    private readonly deps: ImportDeps,
    private readonly target: string | undefined,
    private readonly batchSize: number,
  ) {}

  private get tenant(): TenantImport {
    return this.current!;
  }

  /** Applies one record (a transfer joins the batch); an error names the record's line. */
  async apply(r: JournalRecord, line: number): Promise<void> {
    if (r.type === "transfer" || r.type === "account") {
      if (this.current === undefined) await this.enter(this.target!, this.target!);
    }
    if (r.type === "transfer") {
      await this.openAccounts();
      this.batch.push({ record: r, line });
      if (this.batch.length >= this.batchSize) await this.flush();
      return;
    }
    await this.flush();
    if (r.type === "account") {
      this.openings.push({ record: r, line });
      if (this.openings.length >= this.batchSize) await this.openAccounts();
      return;
    }
    await this.openAccounts();
    try {
      await this.applyOne(r);
    } catch (e) {
      throw atLine(e, line);
    }
  }

  /**
   * Opens the waiting accounts, all at once: each opening is a write of its
   * own, and sent together they share the store's group commits instead of
   * paying one commit each. The first refused (in file order) is reported.
   */
  private async openAccounts(): Promise<void> {
    const waiting = this.openings;
    this.openings = [];
    const results = await Promise.allSettled(waiting.map((w) => this.account(w.record)));
    const failed = results.findIndex((r) => r.status === "rejected");
    if (failed >= 0) throw atLine((results[failed] as PromiseRejectedResult).reason, waiting[failed]!.line);
  }

  private async applyOne(r: Exclude<JournalRecord, TransferRecord | AccountRecord>): Promise<void> {
    const { ledger } = this.deps;
    switch (r.type) {
      case "header":
      case "end":
        return;
      case "tenant":
        return this.enter(this.target ?? r.id, r.name);
    }
    if (this.current === undefined) await this.enter(this.target!, this.target!);
    const t = this.tenant;
    switch (r.type) {
      case "asset":
        await ledger.defineAsset(t.tenant, r.code, r.scale);
        return;
      case "post": {
        const existing = await ledger.getTransfer(t.tenant, r.transferId);
        if (existing.status === "POSTED" && existing.postedAmount === r.amount) return;
        await ledger.postPending(t.tenant, r.transferId, r.amount, r.effectiveAt);
        t.settlements++;
        return;
      }
      case "void": {
        const existing = await ledger.getTransfer(t.tenant, r.transferId);
        if (existing.status === "VOIDED") return;
        await ledger.voidPending(t.tenant, r.transferId, r.effectiveAt);
        t.settlements++;
        return;
      }
      case "freeze": {
        const a = await ledger.getAccount(t.tenant, r.accountId);
        if (a.frozenAt === r.effectiveAt) return;
        if (a.frozenAt !== null) throw new Error(`account "${a.id}" is already frozen, since another time`);
        await ledger.setFrozen(t.tenant, r.accountId, true, r.effectiveAt);
        t.freezes++;
        return;
      }
      case "unfreeze": {
        const a = await ledger.getAccount(t.tenant, r.accountId);
        if (a.frozenAt === null && a.effectiveAt === r.effectiveAt) return;
        // The ledger keeps only an account's last freeze or unfreeze. Lifting a
        // freeze at T is reproduced as a freeze and its lifting, both at T: the
        // account ends up unfrozen with T as its last account-level event, and
        // a run cut between the two writes is finished by the next one.
        if (a.frozenAt === null) await ledger.setFrozen(t.tenant, r.accountId, true, r.effectiveAt);
        await ledger.setFrozen(t.tenant, r.accountId, false, r.effectiveAt);
        t.freezes++;
        return;
      }
    }
  }

  private async enter(tenantId: string, name: string): Promise<void> {
    if (this.current?.tenant === tenantId) return;
    const { access } = this.deps;
    let adminKey: string | undefined;
    if (!(await this.deps.tenants.getTenant(tenantId))) {
      adminKey = (await access.createTenant({ id: tenantId, name })).admin.secret;
    }
    this.current = {
      tenant: tenantId,
      ...(adminKey === undefined ? {} : { adminKey }),
      accountsCreated: 0,
      accountsPresent: 0,
      transfersCreated: 0,
      transfersPresent: 0,
      settlements: 0,
      freezes: 0,
    };
    this.tenants.push(this.current);
  }

  private async account(r: AccountRecord): Promise<void> {
    const t = this.tenant;
    const existing = await this.deps.ledger.store.getAccount(t.tenant, r.id);
    if (existing) {
      const diff = accountDifference(existing, r);
      if (diff) throw new Error(`account "${r.id}" already exists with another ${diff}`);
      t.accountsPresent++;
      return;
    }
    await this.deps.ledger.createAccount(t.tenant, {
      id: r.id,
      overdraftLimit: r.overdraftLimit,
      overdraftUnlimited: r.overdraftUnlimited,
      metadata: r.metadata,
      effectiveAt: r.openedAt,
    });
    t.accountsCreated++;
  }

  /**
   * Writes the waiting transfers, those not already present, as one batch.
   * A batch is all or nothing: when the ledger refuses it, its transfers are
   * written one by one up to the refused one, so that the error names its
   * line (and a re-run after the fix skips those already written).
   */
  async flush(): Promise<void> {
    await this.openAccounts();
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    const t = this.tenant;
    const waiting: { input: TransferInput; line: number }[] = [];
    for (const { record: r, line } of batch) {
      const existing = await this.deps.ledger.store.getTransfer(t.tenant, r.id);
      if (existing) {
        const diff = transferDifference(existing, r);
        if (diff) throw new JournalFileError(line, `transfer "${r.id}" already exists with another ${diff}`);
        t.transfersPresent++;
        continue;
      }
      waiting.push({ line, input: {
        id: r.id,
        idempotencyKey: r.idempotencyKey,
        debitAccountId: r.debitAccountId,
        creditAccountId: r.creditAccountId,
        asset: r.asset,
        amount: r.amount,
        pending: r.pending,
        kind: r.kind,
        note: r.note,
        metadata: r.metadata,
        effectiveAt: r.effectiveAt,
      } });
    }
    if (waiting.length === 0) return;
    try {
      this.count(await this.deps.ledger.postTransfers(t.tenant, waiting.map((w) => w.input)));
    } catch {
      for (const w of waiting) {
        try {
          this.count(await this.deps.ledger.postTransfers(t.tenant, [w.input]));
        } catch (e) {
          throw atLine(e, w.line);
        }
      }
      // Refused together, accepted one by one (a store error that passed): all written now.
    }
  }

  private count(results: readonly TransferResult[]): void {
    // A replay is this very request (the digest covers the id), committed by a concurrent run.
    for (const r of results) {
      if (r.replayed) this.tenant.transfersPresent++;
      else this.tenant.transfersCreated++;
    }
  }
}

/** The first field in which a present account differs from the file's, if any. */
function accountDifference(a: Account, r: AccountRecord): string | undefined {
  if (a.overdraftLimit !== r.overdraftLimit || a.overdraftUnlimited !== r.overdraftUnlimited) return "overdraft limit";
  if (!sameMetadata(a.metadata, r.metadata)) return "metadata";
  if (a.createdAt !== r.openedAt) return "opening time";
  return undefined;
}

/** The first field in which a present transfer differs from the file's, if any. */
function transferDifference(t: Transfer, r: TransferRecord): string | undefined {
  if (t.idempotencyKey !== r.idempotencyKey) return "idempotency key";
  if (t.debitAccountId !== r.debitAccountId || t.creditAccountId !== r.creditAccountId) return "pair of accounts";
  if (t.asset !== r.asset || t.amount !== r.amount) return "amount";
  // A hold may have been settled since; a transfer posted at once has nothing pending.
  if (!r.pending && (t.status !== "POSTED" || t.postedAmount !== t.amount)) return "status";
  if (t.kind !== r.kind || t.note !== r.note || !sameMetadata(t.metadata, r.metadata)) return "kind, note or metadata";
  if (t.effectiveAt !== r.effectiveAt) return "effective time";
  return undefined;
}

function sameMetadata(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
