import type { IncomingHttpHeaders } from "node:http";
import type { IncomingHttpHeaders as Http2IncomingHttpHeaders } from "node:http2";

/**
 * Node request headers as the fetch Headers connect gives handlers, as
 * connect-node builds them: HTTP/2 pseudo-headers left out, repeats appended.
 */
export function nodeHeaderToWebHeader(nodeHeaders: IncomingHttpHeaders | Http2IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const k in nodeHeaders) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = nodeHeaders[k];
    if (v === undefined) continue;
    if (typeof v === "string") header.append(k, v);
    else if (typeof v === "number") header.append(k, String(v));
    else for (const e of v) header.append(k, e);
  }
  return header;
}
