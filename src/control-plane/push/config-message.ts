// The config message of the stream protocol built from a view's already serialized parts: the push server serializes
// a view once, both to tell whether its content changed and to send it. Same bytes as encodeMessage (tested).

/** `encodeMessage({type: 'config', version, resources, unresolved})`, given JSON.stringify of resources and unresolved. */
export function configMessage(version: number, resourcesJson: string, unresolvedJson: string): string {
  return `{"type":"config","version":${JSON.stringify(version)},"resources":${resourcesJson},"unresolved":${unresolvedJson}}\n`;
}
