/**
 * Where a paged listing is: the page tokens of the pages visited from the
 * first one. Tally's tokens only go forward (older entries), so going back
 * is popping to the token that opened the previous page.
 */
export class PageStack {
  private readonly tokens: string[] = [""];
  private nextToken = "";

  /** The token of the page shown ("" for the first). */
  get current(): string {
    return this.tokens[this.tokens.length - 1]!;
  }

  /** 1-based number of the page shown. */
  get page(): number {
    return this.tokens.length;
  }

  get hasNext(): boolean {
    return this.nextToken !== "";
  }

  get hasPrevious(): boolean {
    return this.tokens.length > 1;
  }

  /** Records the shown page's next_page_token ("" on the last page). */
  loaded(nextPageToken: string): void {
    this.nextToken = nextPageToken;
  }

  /** Moves to the next page; returns its token. */
  forward(): string {
    if (!this.hasNext) throw new Error("no next page");
    this.tokens.push(this.nextToken);
    this.nextToken = "";
    return this.current;
  }

  /** Moves to the previous page; returns its token. */
  back(): string {
    if (this.hasPrevious) this.tokens.pop();
    return this.current;
  }

  /** Back to the first page. */
  reset(): void {
    this.tokens.length = 1;
    this.nextToken = "";
  }
}
