// Table-driven resource tests: validate a YAML text and compare its problems, formatted as `file:line:col path: message`.

import assert from 'node:assert/strict';
import { formatProblem, parseResources } from '../../src/api/v1alpha1/load.js';
import type { Resource } from '../../src/api/v1alpha1/resources.js';

/** One invalid document and the exact problems it must produce. */
export interface InvalidCase {
  name: string;
  yaml: string;
  problems: string[];
}

export function problemsOf(yaml: string, file = 'f.yaml'): string[] {
  const r = parseResources(yaml, file);
  return r.ok ? [] : r.problems.map(formatProblem);
}

export function assertInvalidCases(cases: readonly InvalidCase[]): void {
  for (const c of cases) assert.deepEqual(problemsOf(c.yaml), c.problems, c.name);
}

/** The single resource of a valid YAML text, with defaults applied. */
export function onlyResource(yaml: string): Resource {
  const r = parseResources(yaml, 'f.yaml');
  assert.ok(r.ok, r.ok ? '' : r.problems.map(formatProblem).join('\n'));
  assert.equal(r.resources.length, 1);
  return r.resources[0]!.resource;
}
