// Listen addresses as the CLI takes them ("HOST:PORT", ":PORT", "PORT", "[::1]:PORT"), shared by every command
// that listens, so that parsing a flag does not load the code that serves on it.

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses "HOST:PORT", ":PORT" or "PORT" (host defaults to 127.0.0.1). */
export function parseListenAddress(text: string, defaultHost = '127.0.0.1'): ListenAddress {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`invalid listen address "${text}": expected HOST:PORT or PORT`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`invalid port in "${text}"`);
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : defaultHost;
  return { host, port };
}
