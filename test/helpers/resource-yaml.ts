// YAML builders for the resources tests write into sidecar configs.

/** A TrafficPolicy document (with its leading ---) for service `name`; `spec` is YAML put under spec. */
export const policy = (name: string, spec: string) => `---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ${name} }
spec:
  targetRef: { kind: Service, name: ${name} }
${spec.trim().replace(/^/gm, '  ')}
`;
