// The forked workers that hold the scale benchmark's simulated proxies: start them, call them (request/reply over the
// IPC channel, each call bounded in time) and stop them by PID, also when the runner exits on a failure.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientReply, ClientRequest } from '../workers/control-plane-clients.js';

const WORKER = fileURLToPath(new URL('../workers/control-plane-clients.js', import.meta.url));

type Request = ClientRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (r: ClientReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const everyWorker = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of everyWorker) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

class Worker {
  private readonly pending = new Map<number, Pending>();
  private exit: string | null = null;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: ClientReply) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(`client worker ${child.pid}: ${m.error}`));
      else p.resolve(m);
    });
    child.on('exit', (code, signal) => {
      everyWorker.delete(child);
      this.exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`client worker ${child.pid} ${this.exit}`));
      }
      this.pending.clear();
    });
  }

  call(id: number, req: Request, timeoutMs: number): Promise<ClientReply> {
    if (this.exit !== null) return Promise.reject(new Error(`client worker ${this.child.pid} ${this.exit}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`client worker ${this.child.pid}: no answer to ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ ...req, id } as ClientRequest);
    });
  }
}

export class ClientWorkers {
  private nextId = 1;

  private constructor(private readonly workers: Worker[]) {}

  /** Forks `count` workers; they inherit this process's CPU affinity and open-file limit. */
  static start(count: number): ClientWorkers {
    const workers: Worker[] = [];
    for (let i = 0; i < count; i++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      everyWorker.add(child);
      workers.push(new Worker(child));
    }
    return new ClientWorkers(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  pids(): number[] {
    return this.workers.map((w) => w.child.pid ?? 0);
  }

  /** Sends a request to one worker. */
  one(index: number, req: Request, timeoutMs = 10_000): Promise<ClientReply> {
    return (this.workers[index] as Worker).call(this.nextId++, req, timeoutMs);
  }

  /** Sends the same request to every worker. */
  all(req: Request, timeoutMs = 10_000): Promise<ClientReply[]> {
    return Promise.all(this.workers.map((_, i) => this.one(i, req, timeoutMs)));
  }

  /** Closes every simulated proxy, then stops the workers by PID (SIGKILL after a grace period). */
  async stop(): Promise<void> {
    await this.all({ op: 'close' }, 5000).catch(() => undefined);
    await Promise.all(
      this.workers.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}
