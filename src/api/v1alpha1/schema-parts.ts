// Small schema building blocks shared by every resource kind (strings, names, ports, durations, strict mappings), in
// one module so that kinds defined in separate files can use them without importing each other.

import * as v from 'valibot';
import { parseDuration } from './duration.js';

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const HOST = /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/;
export const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export const str = (what = 'a string') => v.string(`expected ${what}`);
export const int = (what: string, min: number, max: number) =>
  v.pipe(v.number(`expected a number`), v.integer(`expected an integer`), v.minValue(min, `expected ${what} >= ${min}`), v.maxValue(max, `expected ${what} <= ${max}`));
export const name = v.pipe(str(), v.maxLength(63, 'expected at most 63 characters'), v.regex(DNS_LABEL, 'expected a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit'));
export const port = int('a port number', 1, 65535);
export const duration = v.pipe(str('a duration'), v.check((s) => parseDuration(s) !== undefined, 'expected a duration such as "250ms", "10s", "1m"'));
export const labels = v.record(str(), str(), 'expected a mapping of strings');
export const obj = <E extends v.ObjectEntries>(entries: E) => v.strictObject(entries, 'expected a mapping');
export const list = <S extends v.GenericSchema>(item: S, what: string, max: number) =>
  v.pipe(v.array(item, `expected a list of ${what}`), v.maxLength(max, `expected at most ${max} ${what}`));

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export const Metadata = obj({
  name,
  namespace: v.optional(name, 'default'),
  labels: v.optional(labels),
  annotations: v.optional(labels),
  /** RFC 3339 time the object was created (Kubernetes-style); route precedence prefers older routes on ties. */
  creationTimestamp: v.optional(v.pipe(str('a time'), v.regex(RFC3339, 'expected an RFC 3339 time such as "2024-05-01T12:00:00Z"'), v.check((s) => !Number.isNaN(Date.parse(s)), 'expected a valid time'))),
});

/** An issue path for a check that spans fields: the keys from the checked value down to the field at fault. */
export function pathOf(root: unknown, keys: readonly (string | number)[]): [v.IssuePathItem, ...v.IssuePathItem[]] {
  const out: v.IssuePathItem[] = [];
  let input: unknown = root;
  for (const key of keys) {
    const value = input !== null && typeof input === 'object' ? (input as Record<string | number, unknown>)[key] : undefined;
    out.push({ type: 'unknown', origin: 'value', input, key, value });
    input = value;
  }
  return out as [v.IssuePathItem, ...v.IssuePathItem[]];
}

/** A field's one-line documentation; it also becomes the field's `description` in the JSON Schema that editors show. */
export const about = <S extends v.GenericSchema>(text: string, schema: S) => v.pipe(schema, v.description(text));

/** A duration that must be above zero (intervals, lifetimes, windows). */
export const positiveDuration = v.pipe(duration, v.check((s) => (parseDuration(s) ?? 1) > 0, 'expected a duration above 0')); // unparsable: reported once, above
export const percent = v.pipe(v.number('expected a number'), v.minValue(0, 'expected a percentage >= 0'), v.maxValue(100, 'expected a percentage <= 100'));
export const bool = v.boolean('expected true or false');
export const httpStatus = int('an HTTP status', 100, 599);

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const headerName = v.pipe(str('a header name'), v.maxLength(256, 'expected at most 256 characters'), v.regex(HEADER_NAME, 'expected a header name (letters, digits and !#$%&\'*+-.^_`|~)'));

/** A check that exactly one of `keys` is present in a mapping; the problem is reported at the second one given. */
export function exactlyOne<T extends object>(keys: readonly (keyof T & string)[]) {
  const expected = `expected exactly one of ${keys.join(', ')}`;
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const present = keys.filter((k) => dataset.value[k] !== undefined);
    if (present.length === 0) addIssue({ message: expected });
    else if (present.length > 1) addIssue({ message: `"${present[1]}" cannot be combined with "${present[0]}": ${expected}`, path: pathOf(dataset.value, [present[1] as string]) });
  });
}

/** A check that the duration at `lesser` is at most the one at `greater` (both fields of one mapping). */
export function durationOrder<T extends object>(lesser: keyof T & string, greater: keyof T & string) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const a = dataset.value[lesser];
    const b = dataset.value[greater];
    if (typeof a !== 'string' || typeof b !== 'string') return;
    if ((parseDuration(a) ?? 0) > (parseDuration(b) ?? 0)) addIssue({ message: `expected at most ${greater} (${b})`, path: pathOf(dataset.value, [lesser]) });
  });
}

/** A number strictly between 0 and 1, such as the fraction of a certificate's lifetime. */
export const fraction = v.pipe(v.number('expected a number'), v.gtValue(0, 'expected a fraction above 0'), v.ltValue(1, 'expected a fraction below 1'));
