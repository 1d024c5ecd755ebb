// HTTP/1.1 requests the way any app makes them in the mesh: to a plain http://service/ URL, through the HTTP proxy
// named by HTTP_PROXY (the app's sidecar). Node's own clients ignore HTTP_PROXY, so the demo does what curl does:
// an absolute-form request to the proxy.

import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function proxyOf(): URL | undefined {
  const p = process.env.HTTP_PROXY ?? process.env.http_proxy;
  return p ? new URL(p) : undefined;
}

export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Reply> {
  const target = new URL(url);
  const proxy = proxyOf();
  const options: http.RequestOptions = proxy
    ? { host: proxy.hostname, port: Number(proxy.port || 80), path: target.href, headers: { ...headers, host: target.host }, agent }
    : { host: target.hostname, port: Number(target.port || 80), path: target.pathname + target.search, headers, agent };
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
