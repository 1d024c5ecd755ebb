// A compiled Gateway API header filter (RequestHeaderModifier / ResponseHeaderModifier): set, add and remove fields of
// a header list. Names are lower-cased once at compile time; applying it builds one new list.

import type { HeaderList } from './http-types.js';

export interface HeaderFilterSpec {
  set?: readonly { name: string; value: string }[] | undefined;
  add?: readonly { name: string; value: string }[] | undefined;
  remove?: readonly string[] | undefined;
}

export class HeaderModifier {
  /** [name, value, ...] with lower-case names. */
  private readonly set: readonly string[];
  private readonly add: readonly string[];
  /** Names whose existing fields are dropped: the removed ones and the set ones (set replaces). */
  private readonly drop: ReadonlySet<string>;

  constructor(spec: HeaderFilterSpec) {
    const flat = (list: HeaderFilterSpec['set']) => (list ?? []).flatMap((h) => [h.name.toLowerCase(), h.value]);
    this.set = flat(spec.set);
    this.add = flat(spec.add);
    this.drop = new Set([...(spec.remove ?? []).map((n) => n.toLowerCase()), ...(spec.set ?? []).map((h) => h.name.toLowerCase())]);
  }

  /**
   * A new list: fields named by `remove` or `set` dropped, `set` fields put in their place, `add` fields appended
   * (an added field joins the existing ones of its name, which HTTP reads as one comma-separated value).
   */
  apply(headers: HeaderList): HeaderList {
    const out: HeaderList = [];
    const drop = this.drop;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (!drop.has(name)) out.push(name, headers[i + 1] as string);
    }
    for (let i = 0; i < this.set.length; i++) out.push(this.set[i] as string);
    for (let i = 0; i < this.add.length; i++) out.push(this.add[i] as string);
    return out;
  }
}
