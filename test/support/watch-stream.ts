import type { Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LedgerService } from "../../gen/tally/ledger/v1/ledger_pb.js";
import type { WatchBalanceRequestSchema, WatchBalanceResponse } from "../../gen/tally/ledger/v1/ledger_pb.js";

/** What {@link WatchStream.within} returns when nothing arrived in time. */
export const IDLE = Symbol("idle");

/**
 * One open WatchBalance call with a pull API that can wait with a deadline
 * without losing the message it was waiting for: a read that times out keeps
 * its pending `next()`, and the following read picks it up.
 */
export class WatchStream {
  private readonly ctl = new AbortController();
  private readonly it: AsyncIterator<WatchBalanceResponse>;
  private pending: Promise<IteratorResult<WatchBalanceResponse>> | undefined;

  constructor(client: Client<typeof LedgerService>, request: MessageInitShape<typeof WatchBalanceRequestSchema>) {
    this.it = client.watchBalance(request, { signal: this.ctl.signal })[Symbol.asyncIterator]();
  }

  /** The next message, or IDLE after `ms`; throws the stream's error, or when the stream ends. */
  async within(ms: number): Promise<WatchBalanceResponse | typeof IDLE> {
    if (!this.pending) {
      this.pending = this.it.next();
      // Closing the stream rejects a read nobody awaits any more; that is expected.
      this.pending.catch(() => {});
    }
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<typeof IDLE>((r) => (timer = setTimeout(() => r(IDLE), ms)));
    try {
      const r = await Promise.race([this.pending, idle]);
      if (r === IDLE) return IDLE;
      this.pending = undefined;
      if (r.done) throw new Error("the stream ended");
      return r.value;
    } catch (e) {
      this.pending = undefined;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next message; fails the test when none arrives within `ms`. */
  async next(ms = 5000): Promise<WatchBalanceResponse> {
    const m = await this.within(ms);
    if (m === IDLE) throw new Error(`no message within ${ms} ms`);
    return m;
  }

  /** Disconnects, as a client that goes away would. */
  close(): void {
    this.ctl.abort();
  }
}
