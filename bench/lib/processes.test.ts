// Unit tests for helpers of processes.ts: /proc/<pid>/stat parsing, picking a failure line, peak RSS of a process tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProcStat, peakRssDuring, pickFailureLine, sampleTree, sleep } from './processes.js';

test('parseProcStat finds ppid and utime+stime after a command name holding spaces and parentheses', () => {
  const fields = ['S', '42', '100', '100', '0', '-1', '4194304', '10', '0', '0', '0', '250', '75', '0', '0', '20', '0', '1'];
  const stat = `1234 (nginx: worker (x)) ${fields.join(' ')}`;
  assert.deepEqual(parseProcStat(stat), { ppid: 42, ticks: 325 });
  assert.equal(parseProcStat('garbage'), null);
});

test('pickFailureLine prefers the error line of a Node crash over its stack and version trailer', () => {
  const crash = ['file:///x.js:10', '    throw new TypeError("bad port");', 'TypeError: bad port', '    at main (file:///x.js:10:5)', 'Node.js v20.20.2'];
  assert.equal(pickFailureLine(crash), 'TypeError: bad port');
  const nodeCrash = ['Error [ERR_HTTP_HEADERS_SENT]: Cannot write headers after they are sent to the client', '    at ServerResponse.writeHead (node:_http_server:344:11)', "  code: 'ERR_HTTP_HEADERS_SENT'", '}', 'Node.js v20.20.2'];
  assert.equal(pickFailureLine(nodeCrash), 'Error [ERR_HTTP_HEADERS_SENT]: Cannot write headers after they are sent to the client');
  assert.equal(pickFailureLine(['[NOTICE] path', "[ALERT] (1) : Cannot raise FD limit"]), '[ALERT] (1) : Cannot raise FD limit');
  assert.equal(pickFailureLine(['starting', 'listening']), 'listening');
  assert.equal(pickFailureLine([]), '');
});

test('peakRssDuring returns what the work returned and the highest RSS of the tree while it ran', async () => {
  const before = sampleTree([process.pid]).rssMb;
  const { value, peakMb } = await peakRssDuring([process.pid], async () => {
    await sleep(300);
    return 'done';
  });
  assert.equal(value, 'done');
  assert.ok(peakMb !== null && peakMb > 0 && peakMb >= before * 0.5, `peak ${peakMb} MiB, before ${before} MiB`);
  assert.deepEqual(await peakRssDuring([], async () => 7), { value: 7, peakMb: null });
});
