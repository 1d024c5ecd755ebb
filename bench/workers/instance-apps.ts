// Self-contained worker for the balancing benchmark, fed to `node -` on stdin (so no relative imports): one HTTP/1.1
// app per port in PORTS (comma-separated), each answering after its delay in DELAYS_MS and naming itself in x-instance.
import { createServer } from 'node:http';

const ports = (process.env.PORTS ?? '').split(',').map(Number);
const delays = (process.env.DELAYS_MS ?? '').split(',').map(Number);
if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0)) {
  console.error('instance-apps: PORTS must list ports');
  process.exit(2);
}
ports.forEach((port, i) => {
  const delay = delays[i] ?? 0;
  const headers = { 'content-type': 'text/plain', 'x-instance': String(i) };
  const server = createServer((req, res) => {
    req.resume();
    const answer = (): void => {
      res.writeHead(200, headers);
      res.end('mycel bench\n');
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  server.keepAliveTimeout = 120_000;
  server.listen(port, '127.0.0.1');
});
