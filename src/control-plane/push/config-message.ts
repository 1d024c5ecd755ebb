// The config message of the stream protocol built from a view's already serialized parts: the push server serializes
// a view once, both to tell whether its content changed and to send it, and each resource's JSON is reused by every
// view that carries the same (immutable) object. Same bytes as encodeMessage (tested).

const texts = new WeakMap<object, string>();

/**
 * JSON.stringify(resources), with each object's text kept while the object lives: stored resources and the services
 * the mesh index builds for views are shared by many views and never modified in place.
 */
export function resourcesJson(resources: readonly unknown[]): string {
  let out = '[';
  for (let i = 0; i < resources.length; i++) {
    const r = resources[i];
    let text: string | undefined;
    if (typeof r === 'object' && r !== null) {
      text = texts.get(r);
      if (text === undefined) texts.set(r, (text = JSON.stringify(r)));
    } else {
      text = JSON.stringify(r) ?? 'null';
    }
    out += i === 0 ? text : ',' + text;
  }
  return out + ']';
}

/** `encodeMessage({type: 'config', version, resources, unresolved})`, given JSON.stringify of resources and unresolved. */
export function configMessage(version: number, resourcesJson: string, unresolvedJson: string): string {
  return `{"type":"config","version":${JSON.stringify(version)},"resources":${resourcesJson},"unresolved":${unresolvedJson}}\n`;
}
