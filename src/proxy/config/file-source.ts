// Config from resource files (`mycel proxy --config FILE...`): loads and validates them as one set, watches them, and
// emits a new plan for each valid change; an invalid change is reported with file:line:column and the last good plan stays.

import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { ConfigInvalidError, loadResourceFiles, type ConfigProblem } from '../../api/v1alpha1/load.js';
import type { Resource } from '../../api/v1alpha1/resources.js';
import { compilePlan, type ProxyPlan } from './plan.js';

export interface ConfigSourceEvents {
  plan: [ProxyPlan];
  rejected: [ConfigProblem[]];
}

export class FileConfigSource extends EventEmitter<ConfigSourceEvents> {
  private readonly files: string[];
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private loading: Promise<void> | null = null;
  private again = false;
  private plan: ProxyPlan | null = null;
  /** A last check by the sidecar of a compiled plan against what it runs with; a reason rejects the change. */
  check: (plan: ProxyPlan) => string | undefined = () => undefined;

  constructor(
    files: readonly string[],
    private readonly selfService: string,
    private readonly debounceMs = 50,
  ) {
    super();
    this.files = files.map((f) => resolve(f));
  }

  get current(): ProxyPlan {
    if (this.plan === null) throw new Error('config not loaded yet');
    return this.plan;
  }

  /** First load: an invalid set is an error the caller reports (exit code 2). */
  async load(): Promise<ProxyPlan> {
    const result = await loadResourceFiles(this.files);
    if (!result.ok) throw new ConfigInvalidError(result.problems);
    this.plan = compilePlan(resolveFilePaths(result.resources), this.selfService, 1);
    return this.plan;
  }

  /** Starts watching: editors replace files by rename, so the directories are watched, not the files. */
  watch(): void {
    const dirs = new Set(this.files.map((f) => dirname(f)));
    const names = new Set(this.files.map((f) => basename(f)));
    for (const dir of dirs) {
      const w = watch(dir, { persistent: false }, (_event, filename) => {
        if (filename === null || names.has(filename.toString())) this.schedule();
      });
      w.on('error', () => {
        /* a removed directory: nothing to reload from until it is back */
      });
      this.watchers.push(w);
    }
  }

  /** Reloads now (also used by SIGHUP). */
  reload(): Promise<void> {
    if (this.loading !== null) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.reloadOnce().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        void this.reload();
      }
    });
    return this.loading;
  }

  close(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reload();
    }, this.debounceMs);
    this.timer.unref();
  }

  private async reloadOnce(): Promise<void> {
    const result = await loadResourceFiles(this.files);
    if (!result.ok) {
      this.emit('rejected', result.problems);
      return;
    }
    const prev = this.plan;
    const next = compilePlan(resolveFilePaths(result.resources), this.selfService, (prev?.version ?? 0) + 1);
    if (prev !== null && next.hash === prev.hash) return; // the same content rewritten
    const reason = this.check(next);
    if (reason !== undefined) {
      this.emit('rejected', [{ file: this.files[0] ?? '', line: 1, column: 1, path: '', message: reason }]);
      return;
    }
    this.plan = next;
    this.emit('plan', next);
  }
}

/** File paths inside a MeshConfig are relative to the file that holds it. */
function resolveFilePaths(loaded: { resource: Resource; source: { file: string } }[]): Resource[] {
  return loaded.map(({ resource, source }) => {
    if (resource.kind !== 'MeshConfig' || resource.spec.identity === undefined) return resource;
    const base = dirname(source.file);
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    const id = resource.spec.identity;
    return { ...resource, spec: { ...resource.spec, identity: { ca: abs(id.ca), cert: abs(id.cert), key: abs(id.key) } } };
  });
}
