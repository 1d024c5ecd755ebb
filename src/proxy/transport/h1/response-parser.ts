// A strict HTTP/1.1 response parser for the proxy's own client side (RFC 9112): status line, headers, and body framing
// (Content-Length, chunked with trailers, close-delimited). Anything ambiguous is an error, never a guess.

export class H1ParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'H1ParseError';
  }
}

export type BodyFraming = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  status: number;
  reason: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 */
  minor: number;
  /** Flat list [name, value, ...] with lower-case names, in arrival order. */
  headers: string[];
  framing: BodyFraming;
  contentLength: number;
  /** The connection may carry another request after this response. */
  keepAlive: boolean;
}

export interface ResponseEvents {
  onInformational(status: number, headers: string[]): void;
  onHead(head: ResponseHead): void;
  /** Decoded body bytes (chunk framing removed). */
  onBody(chunk: Buffer): void;
  onEnd(trailers: string[] | null): void;
}

// Character classes as lookup tables: this runs for every response, so no regular expressions per field.
const TOKEN_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHAR[c.charCodeAt(0)] = 1;
const DIGITS = /^\d{1,15}$/;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** A field value or reason phrase may hold visible ASCII, obs-text, SP and HTAB; never CR, LF, NUL or other controls. */
function badTextChar(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/**
 * Parses field lines text[from..to) (lines separated by CRLF, no final CRLF) into a flat list; throws on any
 * syntax error. A bare CR or LF anywhere is a control character inside a line, so it is refused too.
 */
export function parseFieldBlock(text: string, from: number, to: number, out: string[]): void {
  let pos = from;
  while (pos < to) {
    let eol = text.indexOf('\r\n', pos);
    if (eol === -1 || eol > to) eol = to;
    if (eol === pos) throw new H1ParseError('empty header line');
    const c = text.charCodeAt(pos);
    if (c === 0x20 || c === 0x09) throw new H1ParseError('obsolete line folding');
    let colon = pos;
    while (colon < eol) {
      const k = text.charCodeAt(colon);
      if (k === 0x3a) break;
      if (k >= 128 || TOKEN_CHAR[k] === 0) throw new H1ParseError(`invalid header name ${JSON.stringify(text.slice(pos, Math.min(eol, pos + 64)))}`);
      colon++;
    }
    if (colon === eol || colon === pos) throw new H1ParseError('header line without a name and colon');
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && (text.charCodeAt(vs) === 0x20 || text.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 0x20 || text.charCodeAt(ve - 1) === 0x09)) ve--;
    if (badTextChar(text, vs, ve)) throw new H1ParseError(`invalid character in header ${text.slice(pos, colon)}`);
    out.push(text.slice(pos, colon).toLowerCase(), text.slice(vs, ve));
    pos = eol + 2;
  }
}

/** Parses header lines given one per array entry (trailer sections arrive line by line). */
export function parseFieldLines(lines: string[], from: number, out: string[]): void {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length === 0) throw new H1ParseError('empty header line');
    parseFieldBlock(line, 0, line.length, out);
  }
}

/**
 * Parses a complete response head (status line and fields, without the final CRLFCRLF).
 * `requestMethod` decides whether a body may follow (HEAD has none).
 */
export function parseResponseHead(text: string, requestMethod: string): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  // "HTTP/1.x SSS[ reason]"
  if (
    eol < 12 ||
    !text.startsWith('HTTP/1.') ||
    (text.charCodeAt(7) !== 0x30 && text.charCodeAt(7) !== 0x31) ||
    text.charCodeAt(8) !== 0x20 ||
    !isDigit(text.charCodeAt(9)) || text.charCodeAt(9) === 0x30 ||
    !isDigit(text.charCodeAt(10)) ||
    !isDigit(text.charCodeAt(11)) ||
    (eol > 12 && text.charCodeAt(12) !== 0x20) ||
    badTextChar(text, 12, eol)
  ) {
    throw new H1ParseError(`invalid status line ${JSON.stringify(text.slice(0, Math.min(eol, 80)))}`);
  }
  const minor = text.charCodeAt(7) - 0x30;
  const status = (text.charCodeAt(9) - 0x30) * 100 + (text.charCodeAt(10) - 0x30) * 10 + (text.charCodeAt(11) - 0x30);
  const reason = eol > 13 ? text.slice(13, eol) : '';
  const headers: string[] = [];
  parseFieldBlock(text, eol + 2, text.length, headers);

  let contentLength = -1;
  let transferEncoding: string | null = null;
  let connClose = minor === 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    if (name === 'content-length') {
      // Several values (or a list) are allowed only when they are all the same number.
      for (const part of value.split(',')) {
        const v = part.trim();
        if (!DIGITS.test(v)) throw new H1ParseError(`invalid Content-Length ${JSON.stringify(value.slice(0, 40))}`);
        const n = Number(v);
        if (contentLength !== -1 && contentLength !== n) throw new H1ParseError('conflicting Content-Length values');
        contentLength = n;
      }
    } else if (name === 'transfer-encoding') {
      transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
    } else if (name === 'connection') {
      for (const tok of value.toLowerCase().split(',')) {
        const t = tok.trim();
        if (t === 'close') connClose = true;
        else if (t === 'keep-alive' && minor === 0) connClose = false;
      }
    }
  }

  let framing: BodyFraming;
  if (requestMethod === 'HEAD' || status < 200 || status === 204 || status === 304) {
    framing = 'none';
  } else if (transferEncoding !== null) {
    if (contentLength !== -1) throw new H1ParseError('both Transfer-Encoding and Content-Length');
    if (minor === 0) throw new H1ParseError('Transfer-Encoding in an HTTP/1.0 response');
    const codings = transferEncoding.toLowerCase().split(',').map((s) => s.trim());
    framing = codings[codings.length - 1] === 'chunked' ? 'chunked' : 'close';
    if (codings.slice(0, -1).includes('chunked')) throw new H1ParseError('chunked applied more than once or not last');
  } else if (contentLength !== -1) {
    framing = contentLength === 0 ? 'none' : 'length';
  } else {
    framing = 'close';
  }
  const keepAlive = !connClose && framing !== 'close';
  return { status, reason, minor, headers, framing, contentLength: contentLength === -1 ? 0 : contentLength, keepAlive };
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Close,
  Done,
}

/** Incremental parser for one response at a time on a connection; `reset(method)` before each request. */
export class ResponseParser {
  private state = State.Done;
  private method = 'GET';
  private pending: Buffer | null = null;
  private remaining = 0;
  private headBytes = 0;
  private trailers: string[] | null = null;
  private trailerText = '';
  head: ResponseHead | null = null;

  constructor(
    private readonly events: ResponseEvents,
    private readonly maxHeadBytes = 64 * 1024,
  ) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  /** True while a close-delimited body is being read: the end of the socket ends the body. */
  get readsUntilClose(): boolean {
    return this.state === State.Close;
  }

  reset(method: string): void {
    this.state = State.Head;
    this.method = method;
    this.pending = null;
    this.remaining = 0;
    this.headBytes = 0;
    this.trailers = null;
    this.trailerText = '';
    this.head = null;
  }

  /** The socket ended: completes a close-delimited body; anything else unfinished is an error. */
  finish(): void {
    if (this.state === State.Close) {
      this.state = State.Done;
      this.events.onEnd(null);
      return;
    }
    if (this.state !== State.Done) throw new H1ParseError('connection closed before the response was complete');
  }

  /** Feeds bytes; returns the number of bytes consumed (less than chunk.length only when bytes follow a complete response). */
  execute(chunk: Buffer): number {
    let buf = chunk;
    let pos = 0;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      pos = 0;
    }
    const base = buf.length - chunk.length; // bytes of buf that came from earlier calls
    this.pending = null;
    while (pos < buf.length) {
      switch (this.state) {
        case State.Head: {
          const searchFrom = Math.max(pos, pos + this.headBytes - 3);
          const end = buf.indexOf(CRLFCRLF, searchFrom);
          if (end === -1) {
            if (buf.length - pos > this.maxHeadBytes) throw new H1ParseError(`response head larger than ${this.maxHeadBytes} bytes`);
            this.headBytes = buf.length - pos;
            this.pending = buf.subarray(pos);
            return chunk.length;
          }
          if (end - pos > this.maxHeadBytes) throw new H1ParseError(`response head larger than ${this.maxHeadBytes} bytes`);
          const head = parseResponseHead(buf.toString('latin1', pos, end), this.method);
          pos = end + 4;
          this.headBytes = 0;
          if (head.status < 200) {
            if (head.status === 101) throw new H1ParseError('unexpected 101 Switching Protocols');
            this.events.onInformational(head.status, head.headers);
            break; // stay in Head for the final response
          }
          this.head = head;
          this.events.onHead(head);
          switch (head.framing) {
            case 'none':
              this.state = State.Done;
              this.events.onEnd(null);
              break;
            case 'length':
              this.state = State.Length;
              this.remaining = head.contentLength;
              break;
            case 'chunked':
              this.state = State.ChunkSize;
              break;
            case 'close':
              this.state = State.Close;
              break;
          }
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, buf.length - pos);
          this.events.onBody(pos === 0 && n === buf.length ? buf : buf.subarray(pos, pos + n));
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = State.Done;
            this.events.onEnd(null);
          }
          break;
        }
        case State.ChunkSize: {
          const lf = buf.indexOf(0x0a, pos);
          if (lf === -1) {
            if (buf.length - pos > 4096) throw new H1ParseError('chunk size line too long');
            this.pending = buf.subarray(pos);
            return chunk.length;
          }
          if (lf === pos || buf[lf - 1] !== 0x0d) throw new H1ParseError('bare LF in chunk size line');
          if (lf - pos > 4096) throw new H1ParseError('chunk size line too long');
          const line = buf.toString('latin1', pos, lf - 1);
          const semi = line.indexOf(';');
          const hex = semi === -1 ? line : line.slice(0, semi);
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new H1ParseError(`invalid chunk size ${JSON.stringify(hex.slice(0, 20))}`);
          if (semi !== -1 && /[\x00-\x08\x0a-\x1f\x7f]/.test(line.slice(semi))) throw new H1ParseError('invalid chunk extension');
          pos = lf + 1;
          const size = parseInt(hex, 16);
          if (size === 0) {
            this.state = State.Trailers;
            this.trailerText = '';
          } else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - pos);
          this.events.onBody(buf.subarray(pos, pos + n));
          pos += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          if (buf.length - pos < 2) {
            this.pending = buf.subarray(pos);
            return chunk.length;
          }
          if (buf[pos] !== 0x0d || buf[pos + 1] !== 0x0a) throw new H1ParseError('missing CRLF after chunk data');
          pos += 2;
          this.state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          // The trailer section ends with an empty line; with no trailers that is the CRLF right after "0\r\n".
          const lf = buf.indexOf(0x0a, pos);
          if (lf === -1) {
            if (this.trailerText.length + buf.length - pos > this.maxHeadBytes) throw new H1ParseError('trailer section too large');
            this.pending = buf.subarray(pos);
            return chunk.length;
          }
          if (lf === pos || buf[lf - 1] !== 0x0d) throw new H1ParseError('bare LF in trailer section');
          const line = buf.toString('latin1', pos, lf - 1);
          pos = lf + 1;
          if (line.length === 0) {
            this.state = State.Done;
            this.events.onEnd(this.trailers);
            break;
          }
          this.trailerText += line;
          if (this.trailerText.length > this.maxHeadBytes) throw new H1ParseError('trailer section too large');
          if (this.trailers === null) this.trailers = [];
          parseFieldLines([line], 0, this.trailers);
          break;
        }
        case State.Close: {
          this.events.onBody(pos === 0 ? buf : buf.subarray(pos));
          pos = buf.length;
          break;
        }
        case State.Done:
          // Bytes after a complete response: the caller decides (they are an error on an idle connection).
          return Math.max(0, pos - base);
      }
    }
    return chunk.length;
  }
}
