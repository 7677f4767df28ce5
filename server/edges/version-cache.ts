/**
 * The model versions an edge holds for its clients' asynchronous fits: each version is fetched
 * once, however many of the edge's clients train on it, and dropped once no fit uses it and a
 * newer version has been seen (the coordinator only ever starts fits on its newest version).
 */
export class VersionCache<W> {
  private readonly entries = new Map<number, { key: string; value: Promise<W>; users: number }>();
  private newest = -1;

  /** `fetch` asks for a version's weights, naming one fit of that version (`key`). */
  constructor(private readonly fetch: (version: number, key: string) => Promise<W>) {}

  /** The version's weights for the fit `key`; once they came, call `release(version)` when the fit is over. */
  async acquire(version: number, key: string): Promise<W> {
    this.newest = Math.max(this.newest, version);
    this.evict();
    for (;;) {
      let entry = this.entries.get(version);
      if (!entry) {
        entry = { key, value: this.fetch(version, key), users: 0 };
        this.entries.set(version, entry);
      }
      entry.users++;
      try {
        return await entry.value;
      } catch (err) {
        entry.users--;
        if (this.entries.get(version) === entry) this.entries.delete(version);
        // The fit that named the version may have ended meanwhile; ask again in this fit's name.
        if (entry.key === key) throw err;
      }
    }
  }

  release(version: number): void {
    const entry = this.entries.get(version);
    if (entry) entry.users--;
    this.evict();
  }

  private evict(): void {
    for (const [v, e] of this.entries) if (e.users <= 0 && v < this.newest) this.entries.delete(v);
  }

  /** The versions held now, oldest first. */
  held(): number[] {
    return [...this.entries.keys()].sort((a, b) => a - b);
  }
}
