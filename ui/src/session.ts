import type { WebProtocol } from "./client.js";
import { WEB_PROTOCOLS } from "./client.js";

/** What the dashboard remembers for this tab. */
export interface Session {
  readonly apiKey: string;
  readonly protocol: WebProtocol;
}

const KEY = "tally.apiKey";
const PROTOCOL = "tally.protocol";

/**
 * The session of this tab. The key lives in sessionStorage: it is gone when
 * the tab closes, is not shared with other tabs, and never appears in a URL
 * (so not in history, server logs or Referer headers).
 */
export function loadSession(storage: Storage = sessionStorage): Session | undefined {
  const apiKey = storage.getItem(KEY);
  if (apiKey === null || apiKey === "") return undefined;
  return { apiKey, protocol: protocolOf(storage.getItem(PROTOCOL)) ?? "connect" };
}

/** Remembers the key and protocol for this tab. */
export function saveSession(session: Session, storage: Storage = sessionStorage): void {
  storage.setItem(KEY, session.apiKey);
  storage.setItem(PROTOCOL, session.protocol);
}

/** Forgets the key (log out); the protocol choice stays. */
export function clearSession(storage: Storage = sessionStorage): void {
  storage.removeItem(KEY);
}

/**
 * The protocol to preselect: `?protocol=grpc-web` (or `connect`) in the page's
 * URL wins, then this tab's last choice. Only the protocol may come from the
 * URL; a key there is ignored.
 */
export function preferredProtocol(search: string, storage: Storage = sessionStorage): WebProtocol {
  return protocolOf(new URLSearchParams(search).get("protocol")) ?? protocolOf(storage.getItem(PROTOCOL)) ?? "connect";
}

function protocolOf(v: string | null): WebProtocol | undefined {
  return WEB_PROTOCOLS.find((p) => p === v);
}
