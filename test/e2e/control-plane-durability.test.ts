// The control plane's file store under kill -9: a stream of applies through the real API, the process killed at a
// random moment, restarted on the same directory; every apply that was answered 200 must still be there.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl, type ControlProcess } from '../helpers/control.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-cp-kill-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function service(name: string, port: number) {
  return { apiVersion: 'mycel.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port }] } };
}

test('kill -9 during a stream of applies: a restart finds every acknowledged write', async () => {
  const stateDir = join(dir, 'cp');
  const acked = new Map<string, number>(); // service name -> port last acknowledged
  let cp: ControlProcess = await startControl({ stateDir });
  for (let round = 0; round < 4; round++) {
    // Four writers apply in a loop; the control plane dies under them after a random 200-700 ms.
    const killAt = Date.now() + 200 + Math.random() * 500;
    let stop = false;
    const killer = new Promise<void>((resolve) => {
      setTimeout(() => {
        cp.proc.kill('SIGKILL');
        stop = true;
        resolve();
      }, killAt - Date.now());
    });
    const writer = async (w: number) => {
      for (let i = 0; !stop && i < 2000; i++) {
        const name = `s-${round}-${w}-${i % 7}`;
        const port = 1000 + i;
        try {
          const r = await cp.api('POST', '/api/v1/apply', { resources: [service(name, port)] });
          if (r.status === 200) acked.set(name, port);
        } catch {
          return; // the process died mid-request: that apply was not acknowledged
        }
      }
    };
    await Promise.all([killer, writer(0), writer(1), writer(2), writer(3)]);
    await cp.exited;
    cp = await startControl({ stateDir });
    const stored = await cp.api<{ items: Array<{ metadata: { name: string }; spec: { ports: Array<{ port: number }> } }> }>('GET', '/api/v1/resources/service');
    const have = new Map(stored.body.items.map((s) => [s.metadata.name, s.spec.ports[0]?.port]));
    for (const [name, port] of acked) {
      // A later apply of the same name may have been durable without its answer arriving: the port can only be newer.
      const got = have.get(name);
      assert.ok(got !== undefined && got >= port, `round ${round}: ${name} acknowledged with port ${port}, found ${got}`);
    }
  }
  assert.ok(acked.size > 20, `only ${acked.size} applies were acknowledged: the test did not exercise the store`);
  await cp.stop();
});
