// Child process for the file store's crash tests: opens a FileStore and either commits in a loop, printing each
// acknowledged change to stdout (`put REV KEY`, `del REV KEY`; `deleting KEY` before a delete is sent), or holds it.
// Usage: node store-commit-loop.js loop DIR ROUND MAX_WAL_RECORDS | node store-commit-loop.js hold DIR
import { silentLogger } from '../../src/core/log.js';
import { FileStore } from '../../src/control-plane/store/file-store.js';

const WRITERS = 4;
const MAX_COMMITS_PER_WRITER = 50_000;
// If the parent never kills us, stop on our own.
const DEADLINE_MS = 30_000;

const [mode, dir, round, maxWalRecords] = process.argv.slice(2);
if (dir === undefined || (mode !== 'loop' && mode !== 'hold')) {
  console.error('usage: store-commit-loop.js loop DIR ROUND MAX_WAL_RECORDS | hold DIR');
  process.exit(2);
}

const store = new FileStore(dir, { maxWalRecords: Number(maxWalRecords ?? 100_000), log: silentLogger });
await store.open();
process.stdout.write('ready\n');

if (mode === 'hold') {
  setTimeout(() => process.exit(0), DEADLINE_MS);
} else {
  const stopAt = Date.now() + DEADLINE_MS;
  // Concurrent writers, so that commits share fsyncs (group commit) while the parent kills us.
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(`r${round}-w${w}`, stopAt)));
  await store.close();
}

async function writer(prefix: string, stopAt: number): Promise<void> {
  const live: { key: string; revision: number }[] = [];
  for (let seq = 0; seq < MAX_COMMITS_PER_WRITER && Date.now() < stopAt; seq++) {
    // Every third commit deletes an earlier key of this writer (keeps the state, and so each snapshot, small).
    const old = seq % 3 === 2 ? live.shift() : undefined;
    if (old !== undefined) {
      // Announced first: once sent, the delete may be durable whether or not its acknowledgement gets printed.
      process.stdout.write(`deleting ${old.key}\n`);
      const revision = await store.commit([{ op: 'delete', kind: 'Endpoint', namespace: 'crash', name: old.key }], [
        { kind: 'Endpoint', namespace: 'crash', name: old.key, revision: old.revision },
      ]);
      process.stdout.write(`del ${revision} ${old.key}\n`);
      continue;
    }
    const key = `${prefix}-${seq}`;
    const value = { key, seq, pad: 'x'.repeat(seq % 200) };
    const revision = await store.commit([{ op: 'put', kind: 'Endpoint', namespace: 'crash', name: key, value }], [
      { kind: 'Endpoint', namespace: 'crash', name: key, revision: 0 },
    ]);
    live.push({ key, revision });
    process.stdout.write(`put ${revision} ${key}\n`);
  }
}
