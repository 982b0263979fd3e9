/*
 * udp.node: the datagram I/O under pxe's TFTP transfers and proxyDHCP, and nothing
 * else (no protocol logic lives here; that is all TypeScript).
 *
 * Why it exists: Node 20's dgram costs ~4.9 us of CPU per received datagram (a 64 KiB
 * allocation, a new ArrayBuffer + Buffer, an rinfo object with inet_ntop, a
 * MakeCallback) and ~3.8 us per send (SendWrap, argument checks, a completion tick),
 * and it has no recvmmsg/sendmmsg. Lock-step TFTP pays one of each per block, which
 * made pxe 0.7x tftpd-hpa/atftpd (docs/benchmarks.md). Here a socket is a plain fd
 * watched by a uv_poll_t on the calling thread's loop (main thread or worker):
 *   - receive: recvfrom() into one buffer the JS side allocated once; JS is called
 *     with the length only (and the source written into a small info buffer);
 *   - send: send()/sendto() straight from the caller's buffer; a whole TFTP window
 *     goes out in one sendmmsg() (RFC 7440 windows are back-to-back datagrams);
 *   - EAGAIN on send (socket buffer full) copies the rest into a bounded queue that
 *     is flushed when the fd turns writable, so callers never lose a datagram to a
 *     full buffer and never block.
 * IP_PKTINFO (IPv4, opt-in): a proxyDHCP on a host with several interfaces must know
 * which one a broadcast DISCOVER came in on, to advertise that interface's address as
 * next-server and to send the broadcast reply back out of that same interface (a plain
 * sendto(255.255.255.255) leaves by the default route, or fails with ENETUNREACH when
 * there is none). dgram offers neither; dnsmasq does both the same way. (ipi_spec_dst
 * is not the arrival interface's address: for a broadcast from a source outside our
 * subnets the kernel picks the address of the route back to that source. So the
 * caller maps the ifindex to the interface's own address: nameToIndex().)
 * Worker threads: every call uses the env's own loop (napi_get_uv_event_loop), and an
 * async cleanup hook closes sockets still open when a worker or the process ends
 * (Node aborts if a loop is closed with live handles).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH_RECV 64 /* datagrams per readable event before yielding to the loop */
#define MAX_QUEUE_PACKETS 4096
#define MAX_QUEUE_BYTES (8u << 20)
#define MAX_WINDOW 256

typedef struct queued {
  struct queued *next;
  size_t len;
  socklen_t tolen;
  uint32_t ifindex;
  struct sockaddr_storage to;
  char data[];
} queued_t;

typedef struct {
  napi_env env;
  int fd;
  int family;
  uv_poll_t poll;
  int poll_started;
  int poll_events;
  int broken;
  int closing;
  napi_ref on_message;
  napi_ref recv_buf;
  char *recv_data;
  size_t recv_cap;
  napi_ref info_buf;
  /* [0]=family 4|6, [1]=1 when [20..23] is valid, [2..3]=port (BE), [4..19]=address;
     with IP_PKTINFO: [20..23]=arrival ifindex (LE) */
  uint8_t *info;
  int pktinfo;
  napi_async_context actx;
  napi_async_cleanup_hook_handle cleanup;
  queued_t *qhead, *qtail;
  uint32_t qcount;
  size_t qbytes;
  double queued_total, dropped_total;
} sock_t;

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, uv_err_name(-err), msg);
  return NULL;
}

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, NULL, "udp.node: N-API call failed: " #call); \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static sock_t *get_sock(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "udp.node: not a socket handle");
    return NULL;
  }
  sock_t *s = (sock_t *)p;
  if (s->closing) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "udp.node: socket is closed");
    return NULL;
  }
  return s;
}

static int parse_addr(int family, const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    /* a v4 address on a dual-stack socket becomes ::ffff:a.b.c.d */
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
      struct in_addr v4;
      if (inet_pton(AF_INET, host, &v4) != 1) return -EINVAL;
      memset(&a->sin6_addr, 0, 10);
      memset(((uint8_t *)&a->sin6_addr) + 10, 0xff, 2);
      memcpy(((uint8_t *)&a->sin6_addr) + 12, &v4, 4);
    }
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -EINVAL;
    *len = sizeof *a;
  }
  return 0;
}

static void write_pktinfo(sock_t *s, struct msghdr *mh) {
  if (s->info == NULL) return;
  s->info[1] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      uint32_t ifindex = (uint32_t)pi.ipi_ifindex;
      s->info[20] = ifindex & 0xff;
      s->info[21] = (ifindex >> 8) & 0xff;
      s->info[22] = (ifindex >> 16) & 0xff;
      s->info[23] = (ifindex >> 24) & 0xff;
      s->info[1] = 1;
    }
  }
}

static void write_info(sock_t *s, const struct sockaddr_storage *ss) {
  if (s->info == NULL) return;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    s->info[0] = 4;
    memcpy(s->info + 2, &a->sin_port, 2);
    memcpy(s->info + 4, &a->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    s->info[0] = 6;
    memcpy(s->info + 2, &a->sin6_port, 2);
    memcpy(s->info + 4, &a->sin6_addr, 16);
  } else {
    s->info[0] = 0;
  }
}

static void free_queue(sock_t *s) {
  queued_t *q = s->qhead;
  while (q) {
    queued_t *n = q->next;
    free(q);
    q = n;
  }
  s->qhead = s->qtail = NULL;
  s->qcount = 0;
  s->qbytes = 0;
}

static void update_poll(sock_t *s);
static ssize_t send_one(sock_t *s, const char *p, size_t n, const struct sockaddr_storage *to, socklen_t tolen, uint32_t ifindex);

/* Returns 0 when everything queued went out, -EAGAIN when the buffer filled again. */
static int flush_queue(sock_t *s) {
  while (s->qhead) {
    queued_t *q = s->qhead;
    ssize_t n = send_one(s, q->data, q->len, &q->to, q->tolen, q->ifindex);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -EAGAIN;
    if (n < 0 && errno == EINTR) continue;
    /* sent, or failed for good (ICMP error, no route): either way it leaves the queue */
    s->qhead = q->next;
    if (!s->qhead) s->qtail = NULL;
    s->qcount--;
    s->qbytes -= q->len;
    free(q);
  }
  return 0;
}

static int enqueue(sock_t *s, const char *data, size_t len, const struct sockaddr_storage *to, socklen_t tolen, uint32_t ifindex) {
  if (s->qcount >= MAX_QUEUE_PACKETS || s->qbytes + len > MAX_QUEUE_BYTES) {
    s->dropped_total++;
    return -ENOBUFS;
  }
  queued_t *q = malloc(sizeof *q + len);
  if (!q) return -ENOMEM;
  q->next = NULL;
  q->len = len;
  q->tolen = tolen;
  q->ifindex = ifindex;
  if (tolen) memcpy(&q->to, to, tolen);
  memcpy(q->data, data, len);
  if (s->qtail) s->qtail->next = q;
  else s->qhead = q;
  s->qtail = q;
  s->qcount++;
  s->qbytes += len;
  s->queued_total++;
  update_poll(s);
  return 0;
}

static void call_js(sock_t *s, double len) {
  napi_env env = s->env;
  napi_value cb, argv[1], global, result;
  if (napi_get_reference_value(env, s->on_message, &cb) != napi_ok || cb == NULL) return;
  napi_create_double(env, len, &argv[0]);
  napi_get_global(env, &global);
  napi_status st = napi_make_callback(env, s->actx, global, cb, 1, argv, &result);
  if (st == napi_pending_exception) {
    /* a throw from the handler is the handler's bug: surface it like any uncaught
       exception instead of swallowing it here */
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sock_t *s = (sock_t *)h->data;
  if (s->closing) return;
  if (status < 0) {
    /* the fd itself is broken (should not happen for a UDP socket): stop watching it,
       or the loop would call back forever, and report it once */
    uv_poll_stop(&s->poll);
    s->poll_events = 0;
    s->broken = 1;
    napi_handle_scope scope;
    napi_open_handle_scope(s->env, &scope);
    call_js(s, (double)status);
    napi_close_handle_scope(s->env, scope);
    return;
  }
  if (events & UV_WRITABLE) {
    flush_queue(s);
    update_poll(s);
  }
  if (!(events & UV_READABLE)) return;
  napi_handle_scope scope;
  napi_open_handle_scope(s->env, &scope);
  for (int i = 0; i < MAX_BATCH_RECV && !s->closing; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n;
    /* MSG_TRUNC: the return value is the real length, so an oversized datagram is
       seen (and counted as malformed) rather than silently cut */
    if (s->pktinfo) {
      char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
      struct iovec iov = {s->recv_data, s->recv_cap};
      struct msghdr mh;
      memset(&mh, 0, sizeof mh);
      mh.msg_name = &ss;
      mh.msg_namelen = sl;
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = control;
      mh.msg_controllen = sizeof control;
      n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
      if (n >= 0) write_pktinfo(s, &mh);
    } else {
      n = recvfrom(s->fd, s->recv_data, s->recv_cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&ss, &sl);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      /* ICMP errors on a connected socket (ECONNREFUSED...) are reported, not fatal */
      call_js(s, (double)-errno);
      continue;
    }
    write_info(s, &ss);
    call_js(s, (double)n);
  }
  napi_close_handle_scope(s->env, scope);
}

static void update_poll(sock_t *s) {
  if (s->closing || !s->poll_started || s->broken) return;
  int want = (s->on_message ? UV_READABLE : 0) | (s->qhead ? UV_WRITABLE : 0);
  if (want == s->poll_events) return;
  s->poll_events = want;
  if (want) uv_poll_start(&s->poll, want, on_poll);
  else uv_poll_stop(&s->poll);
}

static void release_js(sock_t *s) {
  napi_env env = s->env;
  if (s->on_message) napi_delete_reference(env, s->on_message);
  if (s->recv_buf) napi_delete_reference(env, s->recv_buf);
  if (s->info_buf) napi_delete_reference(env, s->info_buf);
  if (s->actx) napi_async_destroy(env, s->actx);
  s->on_message = s->recv_buf = s->info_buf = NULL;
  s->actx = NULL;
}

static void on_closed(uv_handle_t *h) {
  sock_t *s = (sock_t *)h->data;
  if (s->cleanup) napi_remove_async_cleanup_hook(s->cleanup);
  free(s);
}

static void close_sock(sock_t *s, int from_cleanup_hook) {
  if (s->closing) return;
  s->closing = 1;
  free_queue(s);
  /* references cannot be deleted while the env is being torn down */
  if (!from_cleanup_hook) release_js(s);
  if (s->fd >= 0) {
    if (s->poll_started) uv_poll_stop(&s->poll);
    close(s->fd);
    s->fd = -1;
  }
  if (s->poll_started) uv_close((uv_handle_t *)&s->poll, on_closed);
  else {
    if (s->cleanup) napi_remove_async_cleanup_hook(s->cleanup);
    free(s);
  }
}

static void cleanup_hook(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  close_sock((sock_t *)arg, 1);
}

/* open(family 4|6, flags: 1 reuseaddr | 2 broadcast | 4 ipv6only | 8 pktinfo (v4), rcvbuf, sndbuf) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 4, flags = 0, rcvbuf = 0, sndbuf = 0;
  if (argc > 0) napi_get_value_int32(env, argv[0], &family);
  if (argc > 1) napi_get_value_int32(env, argv[1], &flags);
  if (argc > 2) napi_get_value_int32(env, argv[2], &rcvbuf);
  if (argc > 3) napi_get_value_int32(env, argv[3], &sndbuf);
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1;
  if ((flags & 1) && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail;
  if ((flags & 2) && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) goto fail;
  if (family == 6) {
    int v6only = (flags & 4) ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) goto fail;
  }
  if ((flags & 8) && family != 6 && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) goto fail;
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) goto fail;
  if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0) goto fail;
  sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, ENOMEM, "calloc");
  }
  s->env = env;
  s->fd = fd;
  s->family = family == 6 ? 6 : 4;
  s->pktinfo = (flags & 8) && family != 6;
  s->poll.data = s;
  napi_value ext;
  CHECK(napi_create_external(env, s, NULL, NULL, &ext));
  CHECK(napi_add_async_cleanup_hook(env, cleanup_hook, s, &s->cleanup));
  return ext;
fail: {
  int e = errno;
  close(fd);
  return throw_errno(env, e, "setsockopt");
}
}

static napi_value addr_call(napi_env env, napi_callback_info info, int do_connect) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  char host[64];
  size_t hl = 0;
  int32_t port = 0;
  if (napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: address must be a string");
    return NULL;
  }
  napi_get_value_int32(env, argv[2], &port);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_addr(s->family, host, port, &ss, &sl) < 0) return throw_errno(env, EINVAL, "address");
  if ((do_connect ? connect(s->fd, (struct sockaddr *)&ss, sl) : bind(s->fd, (struct sockaddr *)&ss, sl)) < 0)
    return throw_errno(env, errno, do_connect ? "connect" : "bind");
  sl = sizeof ss;
  getsockname(s->fd, (struct sockaddr *)&ss, &sl);
  int lport = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  napi_value r;
  napi_create_int32(env, lport, &r);
  return r;
}

static napi_value js_bind(napi_env env, napi_callback_info info) { return addr_call(env, info, 0); }
static napi_value js_connect(napi_env env, napi_callback_info info) { return addr_call(env, info, 1); }

/* start(h, recvBuffer, infoBuffer(20 bytes) | null, onMessage(len)) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (s->on_message) {
    napi_throw_error(env, NULL, "udp.node: already started");
    return NULL;
  }
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || len == 0) {
    napi_throw_type_error(env, NULL, "udp.node: receive buffer must be a non-empty Buffer");
    return NULL;
  }
  s->recv_data = data;
  s->recv_cap = len;
  CHECK(napi_create_reference(env, argv[1], 1, &s->recv_buf));
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_null && t != napi_undefined) {
    void *idata;
    size_t ilen;
    if (napi_get_buffer_info(env, argv[2], &idata, &ilen) != napi_ok || ilen < 24) {
      napi_throw_type_error(env, NULL, "udp.node: info buffer must be a Buffer of 24 bytes");
      return NULL;
    }
    s->info = idata;
    CHECK(napi_create_reference(env, argv[2], 1, &s->info_buf));
  }
  CHECK(napi_create_reference(env, argv[3], 1, &s->on_message));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "pxe:udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &s->actx));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init(loop, &s->poll, s->fd) != 0) return throw_errno(env, EBADF, "uv_poll_init");
  s->poll_started = 1;
  update_poll(s);
  return NULL;
}

static int get_bytes(napi_env env, napi_value buf, napi_value offv, napi_value lenv, char **p, size_t *n) {
  void *data;
  size_t blen;
  if (napi_get_buffer_info(env, buf, &data, &blen) != napi_ok) return -1;
  uint32_t off = 0, len = (uint32_t)blen;
  if (offv) napi_get_value_uint32(env, offv, &off);
  if (lenv) napi_get_value_uint32(env, lenv, &len);
  if (off > blen || len > blen - off) return -1;
  *p = (char *)data + off;
  *n = len;
  return 0;
}

static napi_value result_int(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* Sends one datagram: on the connected peer when `tolen` is 0, else to `to`, out of
   interface `ifindex` when it is not 0 (IP_PKTINFO: with an interface given, even
   255.255.255.255 needs no route). */
static ssize_t send_one(sock_t *s, const char *p, size_t n, const struct sockaddr_storage *to, socklen_t tolen, uint32_t ifindex) {
  if (tolen == 0) return send(s->fd, p, n, MSG_DONTWAIT);
  if (ifindex == 0 || s->family != 4) return sendto(s->fd, p, n, MSG_DONTWAIT, (const struct sockaddr *)to, tolen);
  char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
  memset(control, 0, sizeof control);
  struct iovec iov = {(void *)p, n};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = (void *)to;
  mh.msg_namelen = tolen;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = IPPROTO_IP;
  c->cmsg_type = IP_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
  struct in_pktinfo pi;
  memset(&pi, 0, sizeof pi);
  pi.ipi_ifindex = (int)ifindex;
  memcpy(CMSG_DATA(c), &pi, sizeof pi);
  return sendmsg(s->fd, &mh, MSG_DONTWAIT);
}

/* 0, or -errno (never throws for network errors: UDP is best effort and the protocols
   above retransmit); a full socket buffer queues the datagram, in order */
static int send_or_queue(sock_t *s, const char *p, size_t n, const struct sockaddr_storage *to, socklen_t tolen, uint32_t ifindex) {
  if (s->qhead) return enqueue(s, p, n, to, tolen, ifindex); /* keep datagram order */
  for (;;) {
    if (send_one(s, p, n, to, tolen, ifindex) >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return enqueue(s, p, n, to, tolen, ifindex);
    return -errno;
  }
}

/* The socket and the byte range (argv[0..3]) every send starts with; NULL after a throw. */
static sock_t *sock_and_bytes(napi_env env, napi_value *argv, size_t argc, size_t need, char **p, size_t *n) {
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (argc < need || get_bytes(env, argv[1], argv[2], argv[3], p, n) < 0) {
    napi_throw_range_error(env, NULL, "udp.node: bad buffer range");
    return NULL;
  }
  return s;
}

/* send(h, buf, offset, length) on a connected socket */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *p;
  size_t n;
  sock_t *s = sock_and_bytes(env, argv, argc, 4, &p, &n);
  if (!s) return NULL;
  return result_int(env, send_or_queue(s, p, n, NULL, 0, 0));
}

/* sendTo(h, buf, offset, length, port, address[, ifindex]) on an unconnected socket */
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *p;
  size_t n;
  sock_t *s = sock_and_bytes(env, argv, argc, 6, &p, &n);
  if (!s) return NULL;
  int32_t port = 0;
  napi_get_value_int32(env, argv[4], &port);
  char host[64];
  size_t hl;
  if (napi_get_value_string_utf8(env, argv[5], host, sizeof host, &hl) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: address must be a string");
    return NULL;
  }
  uint32_t ifindex = 0;
  if (argc > 6) napi_get_value_uint32(env, argv[6], &ifindex);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_addr(s->family, host, port, &ss, &sl) < 0) return result_int(env, -EINVAL);
  return result_int(env, send_or_queue(s, p, n, &ss, sl, ifindex));
}

/* Sends `count` datagrams from a ring of `slots` slots of `stride` bytes, starting at
   slot `first` and wrapping; each is `stride` bytes except the last (`last_len`). */
static napi_value send_ring(napi_env env, sock_t *s, void *data, uint32_t stride, uint32_t slots, uint32_t first, uint32_t count, uint32_t last_len) {
  /* windows larger than MAX_WINDOW go out in several sendmmsg() calls */
  struct mmsghdr msgs[MAX_WINDOW];
  struct iovec iov[MAX_WINDOW];
  for (uint32_t base = 0; base < count; base += MAX_WINDOW) {
    uint32_t n = count - base < MAX_WINDOW ? count - base : MAX_WINDOW;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (uint32_t i = 0; i < n; i++) {
      uint32_t slot = (first + base + i) % slots;
      iov[i].iov_base = (char *)data + (size_t)slot * stride;
      iov[i].iov_len = base + i == count - 1 ? last_len : stride;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint32_t sent = 0;
    if (!s->qhead) {
      while (sent < n) {
        int r = sendmmsg(s->fd, msgs + sent, n - sent, MSG_DONTWAIT);
        if (r > 0) {
          sent += (uint32_t)r;
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          /* a hard error (ICMP refused...) applies to the socket, not to one datagram:
             the rest of the window would fail the same way */
          return result_int(env, -errno);
        }
        break;
      }
    }
    /* the socket buffer is full: the rest waits in the queue, in order */
    for (uint32_t i = sent; i < n; i++) {
      int e = enqueue(s, iov[i].iov_base, iov[i].iov_len, NULL, 0, 0);
      if (e < 0) return result_int(env, e);
    }
  }
  return result_int(env, 0);
}

/*
 * sendFileWindow(h, ring, stride, slots, firstBlock, count, blksize, fileSize, chunkSize,
 *                firstChunk, chunks[]) on a connected socket: builds TFTP DATA packets
 * (RFC 1350 sec. 5: opcode 3, 16-bit block number, payload) for blocks firstBlock ..
 * firstBlock+count-1 of a file held as equal chunks (chunks[i] is chunk firstChunk+i,
 * byte (firstChunk+i)*chunkSize of the file), each into its ring slot, and sends them
 * with sendmmsg. The protocol decisions (which blocks, when) stay in transfer.ts; this
 * only replaces its per-block header write and Buffer#copy (a typed-array allocation
 * and argument checks per block, ~4 % of a lock-step profile). Every copy is
 * bounds-checked against the chunk it reads.
 */
static napi_value js_send_file_window(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 11) {
    napi_throw_type_error(env, NULL, "udp.node: sendFileWindow needs 11 arguments");
    return NULL;
  }
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  void *ring;
  size_t ring_len;
  if (napi_get_buffer_info(env, argv[1], &ring, &ring_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: ring must be a Buffer");
    return NULL;
  }
  uint32_t stride = 0, slots = 0, count = 0, blksize = 0, first_chunk = 0;
  double first_block = 0, file_size = 0, chunk_size = 0;
  napi_get_value_uint32(env, argv[2], &stride);
  napi_get_value_uint32(env, argv[3], &slots);
  napi_get_value_double(env, argv[4], &first_block);
  napi_get_value_uint32(env, argv[5], &count);
  napi_get_value_uint32(env, argv[6], &blksize);
  napi_get_value_double(env, argv[7], &file_size);
  napi_get_value_double(env, argv[8], &chunk_size);
  napi_get_value_uint32(env, argv[9], &first_chunk);
  uint32_t nchunks = 0;
  if (napi_get_array_length(env, argv[10], &nchunks) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: chunks must be an array of Buffers");
    return NULL;
  }
  if (stride < 4 || blksize == 0 || blksize > stride - 4 || slots == 0 || (size_t)stride * slots > ring_len || count == 0 ||
      count > slots || first_block < 1 || chunk_size < 1 || file_size < 0 || nchunks > 64) {
    napi_throw_range_error(env, NULL, "udp.node: bad window");
    return NULL;
  }
  char *cdata[64];
  size_t clen[64];
  for (uint32_t i = 0; i < nchunks; i++) {
    napi_value v;
    void *d = NULL;
    size_t l = 0;
    if (napi_get_element(env, argv[10], i, &v) != napi_ok || napi_get_buffer_info(env, v, &d, &l) != napi_ok) {
      napi_throw_type_error(env, NULL, "udp.node: chunks must be an array of Buffers");
      return NULL;
    }
    cdata[i] = d;
    clen[i] = l;
  }
  uint32_t last_len = 0;
  for (uint32_t i = 0; i < count; i++) {
    double b = first_block + i;
    double off = (b - 1) * blksize;
    double remaining = file_size - off;
    uint32_t len = remaining <= 0 ? 0 : remaining < blksize ? (uint32_t)remaining : blksize;
    char *dst = (char *)ring + (size_t)((uint64_t)b % slots) * stride;
    uint32_t bn = (uint32_t)((uint64_t)b & 0xffff); /* block numbers roll over (RFC 1350 has 16 bits) */
    dst[0] = 0;
    dst[1] = 3;
    dst[2] = (char)(bn >> 8);
    dst[3] = (char)(bn & 0xff);
    uint32_t copied = 0;
    while (copied < len) {
      double pos = off + copied;
      double ci_abs = (double)(uint64_t)(pos / chunk_size);
      if (ci_abs < first_chunk || ci_abs - first_chunk >= nchunks) {
        napi_throw_range_error(env, NULL, "udp.node: block outside the chunks given");
        return NULL;
      }
      uint32_t ci = (uint32_t)(ci_abs - first_chunk);
      size_t within = (size_t)(pos - ci_abs * chunk_size);
      if (within >= clen[ci]) {
        napi_throw_range_error(env, NULL, "udp.node: chunk shorter than the file");
        return NULL;
      }
      size_t n = len - copied;
      if (n > clen[ci] - within) n = clen[ci] - within;
      memcpy(dst + 4 + copied, cdata[ci] + within, n);
      copied += (uint32_t)n;
    }
    last_len = 4 + len;
  }
  /* the slots are consecutive in the ring (wrapping) */
  return send_ring(env, s, ring, stride, slots, (uint32_t)((uint64_t)first_block % slots), count, last_len);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) return NULL;
  close_sock((sock_t *)p, 0);
  return NULL;
}

/* nameToIndex(name) -> the interface index in this process's network namespace, 0 if none */
static napi_value js_name_to_index(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IF_NAMESIZE + 1];
  size_t len = 0;
  unsigned idx = 0;
  if (argc > 0 && napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) == napi_ok && len < IF_NAMESIZE) idx = if_nametoindex(name);
  napi_value r;
  napi_create_uint32(env, idx, &r);
  return r;
}

/* stats(h) -> [queuedTotal, droppedTotal, queuedNow] */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  napi_value arr, v;
  CHECK(napi_create_array_with_length(env, 3, &arr));
  napi_create_double(env, s->queued_total, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_double(env, s->dropped_total, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_double(env, s->qcount, &v);
  napi_set_element(env, arr, 2, v);
  return arr;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bind", NULL, js_bind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nameToIndex", NULL, js_name_to_index, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFileWindow", NULL, js_send_file_window, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
