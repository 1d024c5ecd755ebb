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
