import type { DescMessage, JsonValue } from "@bufbuild/protobuf";

/**
 * Placeholder: parses a Connect JSON request body. Replaced by the strict,
 * schema-driven parser (see json-guard tests).
 */
export function parseStrictJson(text: string, _schema: DescMessage): JsonValue {
  return JSON.parse(text) as JsonValue;
}
