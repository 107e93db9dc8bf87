/** A child of {@link h}: nodes and text; null, undefined and false are skipped. */
export type Child = Node | string | null | undefined | false;

/** Attributes of {@link h}: `on…` functions become listeners, `true` a bare attribute, false/undefined nothing. */
export type Props = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

/**
 * Makes an element. Text always goes in as text nodes, never parsed as HTML:
 * account ids, notes and metadata come from other people, and the page's
 * CSP (Trusted Types) would refuse an HTML sink anyway.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false && value !== undefined) el.setAttribute(name, String(value));
  }
  el.append(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
  return el;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}
