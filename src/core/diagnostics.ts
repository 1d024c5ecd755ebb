// The diagnostics channels the proxy publishes on; telemetry (metrics, access log, tap, tracing) subscribes.
// Publishing checks hasSubscribers first, so an unobserved event costs next to nothing.

import diagnostics_channel from 'node:diagnostics_channel';

/** A finished HTTP exchange (success, mesh error, or client gone); the message is the exchange object. */
export const httpExchangeChannel = diagnostics_channel.channel('mycel.http.exchange');

/** A finished tunnel (CONNECT, WebSocket, TCP); the message is its record. */
export const tunnelChannel = diagnostics_channel.channel('mycel.tunnel');
