import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** A self-signed P-256 (or RSA) certificate for 127.0.0.1 and localhost, made with openssl. */
export interface TestCert {
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate, to trust as a CA. */
  readonly ca: Buffer;
}

/** Writes cert.pem and key.pem into `dir`; an RSA key lets static-RSA suites be offered (and refused). */
export function makeCert(dir: string, kind: "ec" | "rsa" = "ec"): TestCert {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const r = spawnSync(
    "openssl",
    ["req", "-x509", ...(kind === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"]), "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", keyFile, "-out", certFile],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { certFile, keyFile, ca: readFileSync(certFile) };
}
