// Cross-checks of the policy kinds against the rest of a resource set: a policy must name a Service of the set, and a
// service has at most one TrafficPolicy and at most one PeerAuthentication (likewise mesh-wide). Called by crossCheck.

import type { ConfigProblem, LoadedResource } from './load.js';
import { formatLine } from './load.js';

const TARGET_PATH = ['spec', 'targetRef', 'name'] as const;

/** Policies that may exist once per target; the key '' stands for "every service" (a PeerAuthentication without target). */
const ONE_PER_TARGET = new Set(['TrafficPolicy', 'PeerAuthentication']);

export function checkPolicies(resources: readonly LoadedResource[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const services = new Set<string>();
  for (const { resource } of resources) if (resource.kind === 'Service') services.add(`${resource.metadata.namespace}/${resource.metadata.name}`);

  const firstByTarget = new Map<string, LoadedResource>();
  for (const r of resources) {
    const { resource } = r;
    if (resource.kind !== 'TrafficPolicy' && resource.kind !== 'PeerAuthentication' && resource.kind !== 'AuthorizationPolicy') continue;
    const ref = resource.spec.targetRef;
    const target = ref ? `${resource.metadata.namespace}/${ref.name}` : '';
    if (ref && !services.has(target)) {
      problems.push({ ...r.locate(TARGET_PATH), path: TARGET_PATH.join('.'), message: `unknown service "${target}": no Service of that name in namespace ${resource.metadata.namespace}` });
    }
    if (!ONE_PER_TARGET.has(resource.kind)) continue;
    const key = `${resource.kind} ${target}`;
    const first = firstByTarget.get(key);
    if (!first) {
      firstByTarget.set(key, r);
      continue;
    }
    const firstName = `${first.resource.metadata.namespace}/${first.resource.metadata.name}`;
    problems.push(
      ref
        ? { ...r.locate(TARGET_PATH), path: TARGET_PATH.join('.'), message: `a second ${resource.kind} for service "${target}"; the first is "${firstName}" at ${formatLine(first.source)}` }
        : { ...r.locate(['spec']), path: 'spec', message: `a second mesh-wide ${resource.kind} (no targetRef); the first is "${firstName}" at ${formatLine(first.source)}` },
    );
  }
  return problems;
}
