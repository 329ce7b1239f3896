import type { DomainRecord } from './record.js';
import type { RecordStore } from './store/store.js';

/**
 * Following other nodes' writes on a shared store (RecordStore.subscribe): every serial up to
 * `#synced` has been passed to `emit`; `#own` holds this node's later ones, which it emitted
 * itself when it wrote them.
 */
export class ChangeFeed {
  readonly #store: RecordStore;
  readonly #emit: (record: DomainRecord) => void;
  #synced: number;
  readonly #own = new Set<number>();
  #dirty = false;
  #running: Promise<void> | null = null;

  private constructor(store: RecordStore, emit: (record: DomainRecord) => void, synced: number) {
    this.#store = store;
    this.#emit = emit;
    this.#synced = synced;
  }

  /** Subscribes to a shared store's changes; undefined on a store that no other process writes. */
  static async follow(store: RecordStore, emit: (record: DomainRecord) => void): Promise<ChangeFeed | undefined> {
    if (!store.subscribe) return undefined;
    const feed = new ChangeFeed(store, emit, await store.serial());
    await store.subscribe(() => feed.#catchUp());
    return feed;
  }

  /** This node wrote (and emitted) the record of `serial`: the catch-up skips it. */
  own(serial: number): void {
    this.#own.add(serial);
  }

  /**
   * Another node wrote (or notices were lost): emit every record written since the last
   * catch-up that this node did not write itself. Reading by serial rather than trusting
   * the notice's content means a lost notice is made up by the next one. Runs one at a time;
   * a failure (store unreachable) leaves `synced` where it was for the next attempt.
   */
  #catchUp(): void {
    this.#dirty = true;
    if (this.#running) return;
    this.#running = (async () => {
      try {
        while (this.#dirty) {
          this.#dirty = false;
          for (let page = await this.#store.listSince(this.#synced, 500); page.length; page = await this.#store.listSince(this.#synced, 500)) {
            for (const r of page) if (!this.#own.delete(r.serial)) this.#emit(r);
            this.#synced = page[page.length - 1]!.serial;
          }
          for (const s of this.#own) if (s <= this.#synced) this.#own.delete(s);
        }
      } catch {
        // The store is down: the reconnect notice (RecordStore.subscribe) brings the next attempt.
      } finally {
        this.#running = null;
      }
    })();
  }
}
