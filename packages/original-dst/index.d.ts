// Types of @mycel/original-dst: getsockopt(SO_ORIGINAL_DST) for a connected TCP socket's file descriptor.

export interface OriginalDestination {
  /** IPv4 dotted quad or IPv6 text. */
  address: string;
  port: number;
}

/**
 * The destination the connection on `fd` had before an iptables REDIRECT / DNAT; null when conntrack knows no such
 * connection. Throws (code ERR_ORIGINAL_DST) on other errors. Null as a whole when the addon is not built.
 */
export declare const originalDst: ((fd: number) => OriginalDestination | null) | null;

/** Why the addon could not be loaded, when `originalDst` is null. */
export declare const loadError: Error | null;
