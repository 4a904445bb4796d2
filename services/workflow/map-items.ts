import { fromBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { CreateWorkflowRequestSchema } from "../../gen/agentainer/workflow/v1/workflow_pb.js";
import type { ItemPage } from "./run-store.js";

/** Items per stored page of a MAP step. */
export const itemsPerPage = 1000;
/** Pages stored per run-store write when a step starts. */
export const pagesPerWrite = 16;

/**
 * Cuts a MAP step's items into the pages the run store keeps (see RunStore.itemPage), so that a
 * step of any width holds only the pages its tasks are being dispatched from, not every item.
 */
export function toItemPages(
  stepId: string,
  items: readonly JsonValue[],
  firstPage = 0,
): ItemPage[] {
  const pages: ItemPage[] = [];
  for (let from = 0, page = firstPage; from < items.length; from += itemsPerPage, page++) {
    pages.push({
      stepId,
      page,
      items: JSON.stringify(items.slice(from, from + itemsPerPage)),
    });
  }
  return pages;
}

/**
 * Reads one MAP step's items from its stored pages, keeping the last few pages read (items are
 * dispatched in index order, and retries reach back a little). Concurrent reads of one page share
 * one store read.
 */
export class ItemReader {
  /** By page number, least recently used first: the read in progress, and its items once read. */
  private readonly pages = new Map<
    number,
    { loading: Promise<readonly JsonValue[]>; items?: readonly JsonValue[] }
  >();

  constructor(
    private readonly stepId: string,
    readonly width: number,
    private readonly load: (page: number) => Promise<string | undefined>,
    private readonly keepPages = 4,
  ) {}

  /**
   * The item at once when its page is in memory, else a promise of it: a task launched from a
   * page already read goes on in the same tick (and takes its step's idle lease before another
   * task's end gives that lease back).
   */
  read(index: number): JsonValue | Promise<JsonValue> {
    const page = this.page(index);
    const items = page.items;
    if (items === undefined) return page.loading.then((read) => this.pick(read, index));
    return this.pick(items, index);
  }

  async get(index: number): Promise<JsonValue> {
    const page = this.page(index);
    return this.pick(page.items ?? (await page.loading), index);
  }

  private page(index: number) {
    if (!Number.isInteger(index) || index < 0 || index >= this.width) {
      throw new RangeError(`step ${this.stepId} has no item ${index} (it has ${this.width})`);
    }
    const number = Math.floor(index / itemsPerPage);
    const page = this.pages.get(number);
    if (page !== undefined) {
      // Most recently used last.
      this.pages.delete(number);
      this.pages.set(number, page);
      return page;
    }
    const loading = this.readPage(number);
    const entry: { loading: Promise<readonly JsonValue[]>; items?: readonly JsonValue[] } = {
      loading,
    };
    this.pages.set(number, entry);
    loading.then(
      (items) => (entry.items = items),
      () => {
        if (this.pages.get(number) === entry) this.pages.delete(number);
      },
    );
    if (this.pages.size > this.keepPages) {
      this.pages.delete(this.pages.keys().next().value as number);
    }
    return entry;
  }

  private pick(items: readonly JsonValue[], index: number): JsonValue {
    return items[index % itemsPerPage] ?? null;
  }

  private async readPage(page: number): Promise<readonly JsonValue[]> {
    const text = await this.load(page);
    if (text === undefined) {
      throw new Error(`item page ${page} of step ${this.stepId} is missing from the run store`);
    }
    return JSON.parse(text) as JsonValue[];
  }
}

/**
 * The inline items of a MAP step, read from the stored CreateWorkflowRequest (the definition
 * validates them but does not keep them, see definition.ts).
 */
export function inlineItems(request: Uint8Array, stepId: string): JsonValue[] {
  const step = fromBinary(CreateWorkflowRequestSchema, request).steps.find((s) => s.id === stepId);
  const src = step?.mapItems?.source;
  if (src?.case !== "inline") return [];
  return src.value.items.map((v) => toJson(ValueSchema, v));
}
