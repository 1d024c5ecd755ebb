// The example's "api" app: a plain HTTP/1.1 server that knows nothing of the mesh. It answers /hello, echoes bodies
// on /echo, and shows who called it (the x-mycel-peer-identity field its sidecar sets) on /whoami.

import http from 'node:http';

export function createApiApp(): http.Server {
  let count = 0;
  return http.createServer((req, res) => {
    count++;
    const url = new URL(req.url ?? '/', 'http://api');
    if (url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    req.resume();
    res.setHeader('content-type', 'application/json');
    if (url.pathname === '/whoami') {
      res.end(JSON.stringify({ caller: req.headers['x-mycel-peer-identity'] ?? null, host: req.headers.host }, null, 2) + '\n');
      return;
    }
    res.end(JSON.stringify({ service: 'api', message: 'hello from api', path: url.pathname, requests: count }) + '\n');
  });
}
