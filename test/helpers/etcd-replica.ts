// A control-plane replica reduced to its etcd store, run as a child process by the etcd store tests: it writes the
// objects it is given, prints `ready <revision>`, then either stays up (to be SIGKILLed) or closes the store (leaving
// its lease to lapse, or revoking it) and returns, so that the test can see whether anything left behind keeps the
// process alive.
// Usage: node etcd-replica.js '{"endpoints":[...],"prefix":"/p/","leaseTtlSeconds":2,"ops":[...],"then":"hold"|"close"|"revoke"}'

import { silentLogger } from '../../src/core/log.js';
import { EtcdStore } from '../../src/control-plane/store/etcd-store.js';
import type { StoreOp } from '../../src/control-plane/store/store.js';

interface ReplicaArgs {
  endpoints: string[];
  prefix: string;
  leaseTtlSeconds: number;
  ops: StoreOp[];
  then: 'hold' | 'close' | 'revoke';
}

const args = JSON.parse(process.argv[2] ?? '{}') as ReplicaArgs;
const store = new EtcdStore({ endpoints: args.endpoints, prefix: args.prefix, leaseTtlSeconds: args.leaseTtlSeconds, log: silentLogger });
await store.open();
const revision = await store.commit(args.ops);
process.stdout.write(`ready ${revision}\n`);
if (args.then === 'hold') {
  // Stays up until the test kills it; stdin stays open for that long.
  process.stdin.resume();
} else {
  await store.close({ revoke: args.then === 'revoke' });
  process.stdout.write('closed\n');
}
