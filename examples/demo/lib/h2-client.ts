// An HTTP/2 (h2c) client over one reused session, for the demo's calls to its HTTP/2 and gRPC upstreams through the
// sidecar's upstream bindings (MYCEL_UPSTREAM_<NAME>=host:port). A broken session is replaced on the next call.

import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface H2Reply {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
}

export class H2Client {
  private session: ClientHttp2Session | null = null;

  /** `variable`: the environment variable with host:port, `fallback` when it is unset. */
  constructor(private readonly address: string) {}

  static fromEnv(variable: string): H2Client {
    const address = process.env[variable];
    if (address === undefined || address === '') {
      process.stderr.write(`set ${variable} to host:port (mycel run --upstream NAME=PORT sets it)\n`);
      process.exit(2);
    }
    return new H2Client(address);
  }

  private connect(): ClientHttp2Session {
    if (this.session !== null && !this.session.closed && !this.session.destroyed) return this.session;
    const s = http2.connect(`http://${this.address}`);
    s.on('error', () => {});
    s.on('close', () => {
      if (this.session === s) this.session = null;
    });
    this.session = s;
    return s;
  }

  request(headers: OutgoingHttpHeaders, body: Buffer | null, timeoutMs = 5000): Promise<H2Reply> {
    return new Promise((resolve, reject) => {
      const stream = this.connect().request(headers, { endStream: body === null });
      const chunks: Buffer[] = [];
      let head: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      stream.setTimeout(timeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on('response', (h) => (head = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => resolve({ headers: head, trailers, body: Buffer.concat(chunks) }));
      stream.on('close', () => reject(new Error(`stream to ${this.address} closed (code ${stream.rstCode})`)));
      stream.on('error', reject);
      if (body !== null) stream.end(body);
    });
  }
}
