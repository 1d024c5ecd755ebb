// Renders the JSON Schema of every resource kind from the valibot schemas (the one source of truth), for editors:
// `schemas/<Kind>.json` per kind and `schemas/mycel.json` for a file of any kinds. `npm run schemas` writes them.

import { toJsonSchema, type ConversionConfig, type JsonSchema } from '@valibot/to-json-schema';
import type * as v from 'valibot';
import { DURATION_PATTERN } from './duration.js';
import { KINDS, type KindName } from './resources.js';
import { duration } from './schema-parts.js';

const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

/** One line per kind, the top-level description an editor shows. */
const KIND_DESCRIPTIONS: Partial<Record<KindName, string>> = {
  Service: 'A service of the mesh: its ports and protocols, and static endpoints for services outside the mesh.',
  MeshConfig: 'Mesh-wide settings: trust domain, limits, timeouts, transport, certificates and telemetry.',
  TrafficPolicy: 'How callers reach one service: load balancing, circuit breaking, outlier detection, health checks, retries, timeout, rate limit.',
  PeerAuthentication: 'The mutual TLS mode of one service, or of every service when it has no targetRef.',
  AuthorizationPolicy: 'Which callers may send which requests to one service (Istio semantics: DENY first, then ALLOW).',
};

// The duration check is a function, which JSON Schema cannot express; its pattern says the same. Other checks (ranges
// across fields, "exactly one of") are left out of the JSON Schema: the loader still enforces them.
const durationCheck = duration.pipe[1];
const CONVERSION: ConversionConfig = {
  target: 'draft-07',
  overrideAction: ({ valibotAction, jsonSchema }) => {
    if (valibotAction === durationCheck) return { ...jsonSchema, pattern: DURATION_PATTERN };
    if (valibotAction.type === 'check' || valibotAction.type === 'raw_check') return jsonSchema;
    return undefined;
  },
};

/** The JSON Schema of one kind, without `$schema` (the caller decides whether it is a root). */
function kindSchema(kind: KindName): JsonSchema {
  const converted = toJsonSchema(KINDS[kind] as v.GenericSchema, CONVERSION);
  delete converted.$schema;
  const description = KIND_DESCRIPTIONS[kind];
  return { title: `${kind} (Mycel)`, ...(description ? { description } : {}), ...converted };
}

const text = (schema: JsonSchema) => JSON.stringify(schema, null, 2) + '\n';

/** File name -> content, in a fixed order: every kind, then `mycel.json` (any kind, for files that mix them). */
export function renderJsonSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  const kinds = Object.keys(KINDS) as KindName[];
  const definitions: Record<string, JsonSchema> = {};
  for (const kind of kinds) {
    const schema = kindSchema(kind);
    definitions[kind] = schema;
    files.set(`${kind}.json`, text({ $schema: DRAFT_07, ...schema }));
  }
  files.set(
    'mycel.json',
    text({
      $schema: DRAFT_07,
      title: 'Mycel resource',
      description: `A Mycel resource of any kind (${kinds.join(', ')}). Put "# yaml-language-server: $schema=<path>/mycel.json" at the top of a YAML file.`,
      anyOf: kinds.map((kind) => ({ $ref: `#/definitions/${kind}` })),
      definitions,
    }),
  );
  return files;
}
