// A trace receiver for the benchmark's tracing row: accepts OTLP/HTTP exports, reads and drops them, answers 200.
// Run as its own process (`node dist/bench/peers/otlp-sink.js PORT`) so that its work is not charged to the proxies.
import http from 'node:http';

const port = Number(process.argv[2]);
let spansBytes = 0;
const server = http.createServer((req, res) => {
  req.on('data', (c: Buffer) => {
    spansBytes += c.length;
  });
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
    res.end();
  });
});
server.listen(port, '127.0.0.1', () => console.log(`otlp sink on 127.0.0.1:${port}`));
process.on('SIGTERM', () => {
  console.log(`otlp sink received ${spansBytes} bytes`);
  server.close();
  process.exit(0);
});
