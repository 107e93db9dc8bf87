import type { WebProtocol } from "./client.js";
import { h } from "./dom.js";
import type { Session } from "./session.js";

/** The protocol picker, on the login form and in the header. */
export function protocolPicker(selected: WebProtocol, onChange?: (p: WebProtocol) => void): HTMLSelectElement {
  const select = h(
    "select",
    { "data-testid": "protocol", "aria-label": "Protocol", onchange: () => onChange?.(select.value as WebProtocol) },
    h("option", { value: "connect", selected: selected === "connect" }, "Connect"),
    h("option", { value: "grpc-web", selected: selected === "grpc-web" }, "gRPC-Web"),
  );
  return select;
}

/**
 * The key form. The input has no name and the form no action: the key can
 * only leave through the script (to sessionStorage and an Authorization
 * header), and the CSP's form-action 'none' stops a native submission.
 */
export function loginView(protocol: WebProtocol, error: string | undefined, onLogin: (s: Session) => void): HTMLElement {
  const key = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "tly_…",
    "data-testid": "api-key",
  });
  const picker = protocolPicker(protocol);
  const form = h(
    "form",
    {
      class: "login",
      "data-testid": "login",
      onsubmit: (e) => {
        e.preventDefault();
        const apiKey = key.value.trim();
        if (apiKey !== "") onLogin({ apiKey, protocol: picker.value as WebProtocol });
      },
    },
    h("h2", {}, "Open the dashboard"),
    h("label", { for: "api-key" }, "API key"),
    key,
    h("label", {}, "Protocol ", picker),
    h("button", { type: "submit", "data-testid": "login-submit" }, "Open"),
    error === undefined ? null : h("p", { class: "error", role: "alert", "data-testid": "login-error" }, error),
    h("p", { class: "hint" }, "The key stays in this tab (sessionStorage) and is sent only as an Authorization header."),
  );
  return form;
}
