// Validates resources that arrive as JSON values (the control-plane API, the config stream) with the same schemas as
// files; problems name the value's index and the field path, since there is no source text to point into.

import * as v from 'valibot';
import { KINDS, type KindName, type Resource } from './resources.js';

export interface ValueProblem {
  index: number;
  path: string;
  message: string;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out;
}

export function validateValues(values: readonly unknown[]): { resources: Resource[]; problems: ValueProblem[] } {
  const resources: Resource[] = [];
  const problems: ValueProblem[] = [];
  values.forEach((value, index) => {
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (typeof kind !== 'string' || !(kind in KINDS)) {
      problems.push({ index, path: 'kind', message: `expected a kind, one of ${Object.keys(KINDS).join(', ')}` });
      return;
    }
    const r = v.safeParse(KINDS[kind as KindName] as v.GenericSchema<unknown, Resource>, value);
    if (r.success) resources.push(r.output);
    else for (const issue of r.issues) problems.push({ index, path: formatPath((issue.path ?? []).map((p) => p.key as PropertyKey)), message: issue.message });
  });
  return { resources, problems };
}
