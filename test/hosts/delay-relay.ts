// A delaying TCP relay for chaos tests where tc netem is missing: a process in a host's namespace that connections to
// one of its ports are redirected through (iptables REDIRECT on the host's link), and that holds every chunk of bytes
// for a delay (plus jitter) in each direction before passing it on, a close or reset included (what was sent before
// a reset still arrives, as on a slow wire). It delays the byte stream, not packets: TCP handshakes complete at once,
// and nothing is reordered (a chunk never overtakes the one before it).

import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns-bed.js';

/**
 * The relay, run with `node -e RELAY LISTEN_PORT TARGET_PORT`: accepts on LISTEN_PORT, connects each client to
 * 127.0.0.1:TARGET_PORT, and forwards both ways after the delay. Lines `delay MS JITTER_MS` on stdin change the delay
 * for what arrives from then on; it prints `relay ready` and `delay set` lines.
 */
const RELAY = `
const net = require('node:net');
const [listenPort, targetPort] = process.argv.slice(1).map(Number);
let delayMs = 0, jitterMs = 0;
const END = 'end', CUT = 'cut';
// Bytes, then END (a FIN) or CUT (the socket closed or failed), each leaving once due, in the order they came.
function forward(from, to) {
  const queue = [];
  let timer = null;
  const pump = () => {
    timer = null;
    const now = Date.now();
    while (queue.length > 0 && queue[0].at <= now) {
      const chunk = queue.shift().chunk;
      if (to.destroyed) return;
      if (chunk === END) to.end();
      else if (chunk === CUT) to.destroy();
      else to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(pump, queue[0].at - now);
  };
  const push = (chunk) => {
    const last = queue.length > 0 ? queue[queue.length - 1].at : 0;
    queue.push({ at: Math.max(last, Date.now() + delayMs + Math.random() * jitterMs), chunk });
    if (timer === null) timer = setTimeout(pump, Math.max(0, queue[0].at - Date.now()));
  };
  from.on('data', push);
  from.on('end', () => push(END));
  from.on('close', () => push(CUT));
  from.on('error', () => {});
}
net.createServer({ allowHalfOpen: true }, (client) => {
  const upstream = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
  forward(client, upstream);
  forward(upstream, client);
}).listen(listenPort, '0.0.0.0', () => console.log('relay ready'));
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) !== -1) {
    const [cmd, ms, jitter] = buf.slice(0, nl).split(' ');
    buf = buf.slice(nl + 1);
    if (cmd === 'delay') { delayMs = Number(ms); jitterMs = Number(jitter); console.log('delay set ' + delayMs + ' ' + jitterMs); }
  }
});
`;

export interface DelayRelay {
  /** Delay (and up to `jitterMs` more, at random) per chunk in each direction, for what arrives from now on. */
  setDelay(delayMs: number, jitterMs?: number): Promise<void>;
  /** Removes the redirect and stops the relay (connections through it are cut). */
  stop(): Promise<void>;
}

function nextLine(child: ChildProcess, prefix: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (!seen.split('\n').some((l) => l.startsWith(prefix))) return;
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      resolve();
    };
    const onExit = (code: number | null) => reject(new Error(`delay relay exited (${code}) before "${prefix}"`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Puts a delaying relay in front of `port` on `host`: connections arriving on its link for that port go to the relay
 * on `relayPort` instead (nat PREROUTING REDIRECT), which passes them on to 127.0.0.1:port. No delay until setDelay.
 * The relay is one of the bed's processes, and its rule lives in the namespace: the bed's teardown removes both.
 */
export async function startDelayRelay(host: Host, port: number, relayPort: number): Promise<DelayRelay> {
  const child = host.spawn(process.execPath, ['-e', RELAY, String(relayPort), String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await nextLine(child, 'relay ready');
  const rule = ['PREROUTING', '-i', host.dev, '-p', 'tcp', '--dport', String(port), '-j', 'REDIRECT', '--to-ports', String(relayPort)];
  const add = await host.exec('iptables', ['-w', '5', '-t', 'nat', '-A', ...rule]);
  if (add.code !== 0) {
    child.kill('SIGKILL');
    throw new Error(`iptables REDIRECT to the delay relay in ${host.name}: ${add.stderr.trim()}`);
  }
  return {
    async setDelay(delayMs, jitterMs = 0) {
      const set = nextLine(child, 'delay set');
      child.stdin!.write(`delay ${delayMs} ${jitterMs}\n`);
      await set;
    },
    async stop() {
      await host.exec('iptables', ['-w', '5', '-t', 'nat', '-D', ...rule]);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
