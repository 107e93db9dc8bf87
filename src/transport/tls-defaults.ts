import type { SecureVersion } from "node:tls";

/**
 * Forward-secret AEAD suites only: the TLS 1.3 suites, and for TLS 1.2 ECDHE
 * with AES-GCM or ChaCha20-Poly1305. Node's default list also accepts static
 * RSA key exchange and CBC suites, which RFC 9113 §9.2.2 forbids for HTTP/2
 * and which lose forward secrecy.
 */
export const DEFAULT_TLS_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** The oldest protocol version accepted by default (HTTP/2 needs at least 1.2). */
export const DEFAULT_TLS_MIN_VERSION: SecureVersion = "TLSv1.2";

/** The TLS versions a --tls-min-version may name. */
export const TLS_VERSIONS: readonly SecureVersion[] = ["TLSv1.2", "TLSv1.3"];
