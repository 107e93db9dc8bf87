import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

type Res = ServerResponse | Http2ServerResponse;

/**
 * Writes a whole answer straight onto the Node response, in the order
 * connect-node's universalResponseToNodeResponse does (status and headers,
 * each body chunk, trailers, end), without its async iteration.
 */
export function writeResponse(res: Res, status: number, header: Headers, body: readonly Uint8Array[], trailer?: Headers): void {
  res.writeHead(status, nodeHeaders(header));
  // Each protocol writes the whole body as a Uint8Array; the cast joins the two write overloads.
  for (const chunk of body) (res as ServerResponse).write(chunk);
  if (trailer !== undefined) res.addTrailers(nodeHeaders(trailer));
  res.end();
}

/** Headers as Node takes them: one value per name (Headers joins repeats), Set-Cookie kept apart. */
export function nodeHeaders(h: Headers): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  h.forEach((value, key) => {
    o[key] = value;
  });
  const cookies = h.getSetCookie();
  if (cookies.length > 0) o["set-cookie"] = cookies;
  return o;
}

/** Resolves once the response has drained, or closed (the client left): a slow reader's back-pressure. */
export function drained(res: Res): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
