/* originalDst(fd): the IPv4 or IPv6 destination a TCP connection had before netfilter NAT (iptables REDIRECT)
 * rewrote it, read with getsockopt(SOL_IP, SO_ORIGINAL_DST) or (IPv6) getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST).
 * Returns {address, port}, or null when the connection was not redirected (ENOENT); throws for other errors. */

#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

static napi_value result_of(napi_env env, const char *address, unsigned port) {
  napi_value obj, addr, p;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &addr);
  napi_create_uint32(env, port, &p);
  napi_set_named_property(env, obj, "address", addr);
  napi_set_named_property(env, obj, "port", p);
  return obj;
}

static napi_value js_null(napi_env env) {
  napi_value null;
  napi_get_null(env, &null);
  return null;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_ORIGINAL_DST", msg);
  return NULL;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDst(fd): fd must be a non-negative integer");
    return NULL;
  }

  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return throw_errno(env, "getsockname", errno);

  char text[INET6_ADDRSTRLEN];
  if (local.ss_family == AF_INET6) {
    struct sockaddr_in6 dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) != 0) {
      /* An IPv4 connection on a dual-stack socket (::ffff:a.b.c.d) keeps its NAT entry in the IPv4 table. */
      struct sockaddr_in dst4;
      socklen_t d4 = sizeof dst4;
      if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst4, &d4) == 0) {
        inet_ntop(AF_INET, &dst4.sin_addr, text, sizeof text);
        return result_of(env, text, ntohs(dst4.sin_port));
      }
      return errno == ENOENT ? js_null(env) : throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", errno);
    }
    inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text);
    return result_of(env, text, ntohs(dst.sin6_port));
  }

  struct sockaddr_in dst;
  socklen_t dlen = sizeof dst;
  memset(&dst, 0, sizeof dst);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0)
    return errno == ENOENT ? js_null(env) : throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
  return result_of(env, text, ntohs(dst.sin_port));
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}
