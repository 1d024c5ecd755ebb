// Parses resource YAML (several documents per file), or takes already-parsed JSON values, and validates each document,
// keeping source positions so that every problem is reported as file:line:column, field path and reason. A set with any
// problem is rejected whole.

import { readFile } from 'node:fs/promises';
import { isMap, isNode, isScalar, LineCounter, parseAllDocuments, type Document } from 'yaml';
import * as v from 'valibot';
import { KINDS, PLANNED_KINDS, type KindName, type Resource } from './resources.js';
import { checkPolicies } from './policy-checks.js';
import { crossCheckRoutes } from './route-checks.js';

export interface SourcePosition {
  /** The file, or for values that came without one (the HTTP API) the origin and the index: `request#2`. */
  file: string;
  /** 1-based; 0 when there are no lines to point at (JSON values), and then column is 0 too. */
  line: number;
  column: number;
}

export interface ConfigProblem extends SourcePosition {
  /** The field, as `spec.ports[0].port`; empty for the document itself. */
  path: string;
  message: string;
}

export interface LoadedResource {
  resource: Resource;
  /** Where the document starts. */
  source: SourcePosition;
  /** Where a field of this document is (the deepest node along `path` that exists), for problems found later. */
  locate(path: readonly (string | number)[]): SourcePosition;
}

export type LoadResult = { ok: true; resources: LoadedResource[] } | { ok: false; problems: ConfigProblem[] };

/** `file:line`, or only the file when there are no lines: where another definition is, in a message. */
export function formatLine(p: SourcePosition): string {
  return p.line > 0 ? `${p.file}:${p.line}` : p.file;
}

/** `file:line:column`, or only the file (origin#index) when there are no lines. */
export function formatPosition(p: SourcePosition): string {
  return p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
}

export function formatProblem(p: ConfigProblem): string {
  return `${formatPosition(p)}${p.path ? ' ' + p.path : ''}: ${p.message}`;
}

export class ConfigInvalidError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigInvalidError';
  }
}

/** A field path as problems print it: `spec.rules[0].backendRefs[1].weight`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** The inverse of formatPath: `spec.ports[0].port` -> ['spec', 'ports', 0, 'port']. */
export function parsePath(text: string): Array<string | number> {
  const segs: Array<string | number> = [];
  for (const m of text.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) segs.push(m[2] !== undefined ? Number(m[2]) : (m[1] as string));
  return segs;
}

/** The position of the deepest node along `path` that exists in the document. */
function positionOf(doc: Document, path: readonly PropertyKey[], lc: LineCounter, file: string): SourcePosition {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { file, line: pos.line, column: pos.col };
    }
  }
  return { file, line: 1, column: 1 };
}

/** The position of `key` itself inside the mapping at `path` (for unknown-field errors). */
function positionOfKey(doc: Document, path: readonly PropertyKey[], key: string, lc: LineCounter, file: string): SourcePosition {
  const map = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true);
  if (isMap(map)) {
    for (const pair of map.items) {
      if (isScalar(pair.key) && pair.key.value === key && pair.key.range) {
        const pos = lc.linePos(pair.key.range[0]);
        return { file, line: pos.line, column: pos.col };
      }
    }
  }
  return positionOf(doc, path, lc, file);
}

/** Where the fields of one document are: what validation needs to report a problem at its place. */
interface DocumentPositions {
  /** The deepest existing node along `path`. */
  at(path: readonly PropertyKey[]): SourcePosition;
  /** The key `key` of the mapping at `path` (an unknown field is reported at its name). */
  atKey(path: readonly PropertyKey[], key: string): SourcePosition;
}

function yamlPositions(doc: Document, lc: LineCounter, file: string): DocumentPositions {
  return {
    at: (path) => positionOf(doc, path, lc, file),
    atKey: (path, key) => positionOfKey(doc, path, key, lc, file),
  };
}

/** Values without a source text: every field is reported at `origin#index`. */
function valuePositions(file: string): DocumentPositions {
  const at = (): SourcePosition => ({ file, line: 0, column: 0 });
  return { at, atKey: at };
}

/** Validates one document against the schema of its kind; returns the resource with defaults applied, or adds problems. */
function validateDocument(value: unknown, where: DocumentPositions, problems: ConfigProblem[]): Resource | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ ...where.at([]), path: '', message: 'expected a resource: a mapping with apiVersion, kind, metadata and spec' });
    return undefined;
  }
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== 'string') {
    problems.push({ ...where.at(['kind']), path: 'kind', message: `expected a kind, one of ${Object.keys(KINDS).join(', ')}` });
    return undefined;
  }
  if (!(kind in KINDS)) {
    const planned = PLANNED_KINDS.includes(kind);
    problems.push({
      ...where.at(['kind']),
      path: 'kind',
      message: planned
        ? `kind ${kind} is not supported by this version of Mycel yet`
        : `unknown kind "${kind}", expected one of ${Object.keys(KINDS).join(', ')}`,
    });
    return undefined;
  }
  const schema = KINDS[kind as KindName] as v.GenericSchema<unknown, Resource>;
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return parsed.output;
  for (const issue of parsed.issues) {
    const path = (issue.path ?? []).map((p) => p.key as PropertyKey);
    const last = issue.path?.[issue.path.length - 1] as { origin?: string } | undefined;
    if (issue.type === 'strict_object' && last?.origin === 'key' && issue.expected === 'never') {
      // An unknown key is reported at the key itself, not at its value.
      const key = String(path[path.length - 1]);
      problems.push({ ...where.atKey(path.slice(0, -1), key), path: formatPath(path), message: `unknown field "${key}"` });
    } else if (issue.type === 'strict_object' && last?.origin === 'key' && issue.input === undefined) {
      // A required key is absent: say which, at the mapping that lacks it.
      problems.push({ ...where.at(path), path: formatPath(path), message: `missing field "${String(path[path.length - 1])}"` });
    } else {
      problems.push({ ...where.at(path), path: formatPath(path), message: issue.message });
    }
  }
  return undefined;
}

/** Validates the documents of one YAML text. `file` names the source in messages. */
export function parseResources(text: string, file: string): LoadResult {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const resources: LoadedResource[] = [];
  // parseAllDocuments returns an EmptyStream (no documents) for empty text; that is an empty, valid set.
  if (!Array.isArray(docs)) return { ok: true, resources };

  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lc.linePos(e.pos[0]);
        problems.push({ file, line: pos.line, column: pos.col, path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 50 });
    if (value === null || value === undefined) continue; // an empty document between separators
    const where = yamlPositions(doc, lc, file);
    const resource = validateDocument(value, where, problems);
    if (resource) resources.push({ resource, source: where.at([]), locate: where.at });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, resources };
}

/**
 * Validates already-parsed values (a JSON request body of the control-plane API), as parseResources does a file:
 * problems are reported at `origin#index` and the field path.
 */
export function parseResourceValues(values: readonly unknown[], origin: string): LoadResult {
  const problems: ConfigProblem[] = [];
  const resources: LoadedResource[] = [];
  values.forEach((value, i) => {
    const where = valuePositions(`${origin}#${i}`);
    const resource = validateDocument(value, where, problems);
    if (resource) resources.push({ resource, source: where.at([]), locate: where.at });
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, resources };
}

export interface CrossCheckOptions {
  /**
   * The set is applied on top of resources held elsewhere (`mycel apply` before the control plane checks it against
   * what it stores): a reference to something not in the set is not a problem here.
   */
  partial?: boolean;
}

/**
 * Checks across documents: no two resources of one kind share a namespace and name; at most one MeshConfig; routes
 * name services, subsets, ports and Faults that exist, send somewhere, and do not claim what another route claims.
 */
export function crossCheck(resources: readonly LoadedResource[], options: CrossCheckOptions = {}): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, LoadedResource>();
  let mesh: LoadedResource | undefined;
  for (const r of resources) {
    const { kind, metadata } = r.resource;
    const key = `${kind}/${metadata.namespace}/${metadata.name}`;
    const first = seen.get(key);
    if (first) {
      problems.push({ ...r.locate(['metadata', 'name']), path: 'metadata.name', message: `duplicate ${kind} "${metadata.namespace}/${metadata.name}", first defined at ${formatLine(first.source)}` });
    } else {
      seen.set(key, r);
    }
    if (kind === 'MeshConfig') {
      if (mesh) problems.push({ ...r.source, path: '', message: `a second MeshConfig; the first is at ${formatLine(mesh.source)}` });
      else mesh = r;
    }
  }
  if (options.partial !== true) problems.push(...checkPolicies(resources));
  problems.push(...crossCheckRoutes(resources, options.partial === true));
  return problems;
}

/** Reads and validates a set of files as one unit: any problem in any file rejects the set. */
export async function loadResourceFiles(files: readonly string[]): Promise<LoadResult> {
  const all: LoadedResource[] = [];
  const problems: ConfigProblem[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      problems.push({ file, line: 1, column: 1, path: '', message: `cannot read file: ${(err as Error).message}` });
      continue;
    }
    const r = parseResources(text, file);
    if (r.ok) all.push(...r.resources);
    else problems.push(...r.problems);
  }
  if (problems.length === 0) problems.push(...crossCheck(all));
  return problems.length > 0 ? { ok: false, problems } : { ok: true, resources: all };
}
