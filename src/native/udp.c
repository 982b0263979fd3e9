/*
 * udp.node: the datagram I/O under pxe's TFTP transfers and proxyDHCP. The protocols
 * live in TypeScript; the one piece of TFTP here is auto-advance (auto_advance_t below):
 * answering the in-order ACK of a whole window with the next window, the step a
 * transfer repeats tens of thousands of times, on state the transfer owns and arms.
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
 *     goes out in one UDP GSO send (or one sendmmsg() where GSO is refused; RFC 7440
 *     windows are back-to-back datagrams);
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
#include <netinet/udp.h>
#include <sys/types.h>

/* glibc before 2.29 (RHEL 8, Debian 10) lacks these in <netinet/udp.h> */
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

/*
 * Auto-advance (TFTP transfers only, armed by transfer.ts): the socket answers the one
 * ACK that lock-step and RFC 7440 windows spend nearly all their time on, the in-order
 * ACK of the whole outstanding window, by sending the next window itself from chunks the
 * transfer holds, without entering JS. Everything else (duplicate or partial ACKs, the
 * final ACK, ERROR, a window that needs a chunk not armed, timers) still goes to
 * transfer.ts, which stays the protocol's single implementation: the state this reads
 * and advances (last ACKed and highest sent block) lives in the transfer's own
 * Float64Array, so both sides see one copy. Measured reason (docs/benchmarks.md): JS
 * entry and exit per block cost ~6 us of user CPU, which made lock-step 0.8x atftpd.
 */
#define MAX_CHUNKS 64
/* state slots; AA_BUSY_POLL_US is set by the transfer, the rest are advanced here */
enum { AA_LAST_ACKED, AA_SENT_UP_TO, AA_LAST_SEND_MS, AA_WINDOWS, AA_PACKETS, AA_BYTES, AA_BUSY_POLL_US, AA_POLL_HITS, AA_POLL_MISSES, AA_STATE_LEN };
/*
 * Busy-poll (AA_BUSY_POLL_US > 0): after auto-advance sent a window, the socket polls
 * for the peer's ACK with non-blocking recv() for up to that many microseconds before
 * it goes back to the event loop, the way the kernel's net.core.busy_read does for NICs
 * (it does nothing for loopback or veth). Why: when the thread goes to sleep in
 * epoll_wait its CPU idles, and the ACK then has to wake it; on a VM that wake-up (an
 * IPI to a halted vCPU) costs more than the whole exchange. Measured on the 2-vCPU VM,
 * lock-step atftp over loopback: 0.94-1.00x atftpd sleeping, 1.32-1.51x polling
 * (docs/benchmarks.md). Bounded three ways, so it costs nothing where it cannot help:
 *   - only while this is the one armed transfer in the process (armed_transfers == 1):
 *     with several, the loop has other sockets to serve and is not idle anyway;
 *   - a poll that times out makes the socket skip polling for the next 16 windows,
 *     doubling up to 1024 while the peer stays slower than the budget (a firmware
 *     client over a real NIC answers in 100s of microseconds): steady state, one
 *     wasted budget per 1024 windows;
 *   - at most MAX_BATCH_RECV datagrams per turn of the loop, as without polling.
 */
#define POLL_SKIP_FIRST 16
#define POLL_SKIP_MAX 1024
static int armed_transfers; /* process-wide (every worker's sockets), atomic */

/* A file held in equal chunks (cdata[i] is chunk first_chunk+i, byte
   (first_chunk+i)*chunk_size of the file) and the ring of `slots` slots of `stride`
   bytes its DATA packets are built in: what sendFileWindow and autoAdvance both take. */
typedef struct {
  char *ring;
  uint32_t stride, slots, blksize;
  double file_size, chunk_size;
  uint32_t first_chunk, nchunks;
  char *cdata[MAX_CHUNKS];
  size_t clen[MAX_CHUNKS];
} file_window_t;

typedef struct {
  int armed;
  double *state;
  napi_ref state_ref, ring_ref;
  napi_ref cref[MAX_CHUNKS];
  uint32_t windowsize;
  double total_blocks;
  file_window_t fw;
} auto_advance_t;

typedef struct {
  napi_env env;
  uv_loop_t *loop; /* the thread's loop, known from start() on */
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
  int no_gso; /* UDP GSO refused once on this socket: sendmmsg from then on */
  uint32_t poll_skip, poll_backoff; /* busy-poll backoff: windows left to skip, next skip */
  double gso_batches;
  auto_advance_t aa;
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

/* The arguments of a call on a socket handle (argv[0], up to *argc of them): the
   socket, or NULL after a throw. */
static sock_t *sock_args(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "udp.node: N-API call failed: napi_get_cb_info");
    return NULL;
  }
  return get_sock(env, argv[0]);
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
static int aa_try(sock_t *s, ssize_t n);
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

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Right after auto-advance sent a window (so armed): until when to poll for the ACK
   (0 = do not). */
static int64_t busy_poll_deadline(sock_t *s) {
  double us = s->aa.state[AA_BUSY_POLL_US];
  if (!(us > 0)) return 0;
  if (__atomic_load_n(&armed_transfers, __ATOMIC_RELAXED) != 1) return 0;
  if (s->poll_skip > 0) {
    s->poll_skip--;
    return 0;
  }
  return mono_ns() + (int64_t)(us * 1000);
}

/* recv() for a connected transfer socket, polling until `deadline` (if any: only set
   while armed, and nothing can disarm during the poll) while it is empty; a timeout
   backs the socket off (busy-poll above). */
static ssize_t recv_transfer(sock_t *s, int64_t deadline) {
  for (;;) {
    ssize_t n = recv(s->fd, s->recv_data, s->recv_cap, MSG_DONTWAIT | MSG_TRUNC);
    if (!deadline) return n;
    if (n >= 0) {
      s->aa.state[AA_POLL_HITS] += 1;
      s->poll_backoff = 0;
      return n;
    }
    if (errno != EAGAIN) return n;
    if (mono_ns() >= deadline) {
      s->aa.state[AA_POLL_MISSES] += 1;
      s->poll_backoff = s->poll_backoff == 0 ? POLL_SKIP_FIRST : s->poll_backoff >= POLL_SKIP_MAX ? POLL_SKIP_MAX : s->poll_backoff * 2;
      s->poll_skip = s->poll_backoff;
      errno = EAGAIN;
      return -1;
    }
    cpu_relax();
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
  napi_handle_scope scope = NULL; /* opened on the first datagram that goes to JS */
  int64_t poll_until = 0; /* busy-poll deadline for the next recv only (set right after auto-advance sent a window) */
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
    } else if (s->info) {
      n = recvfrom(s->fd, s->recv_data, s->recv_cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&ss, &sl);
    } else {
      /* nobody reads the source (a connected TFTP transfer socket): skip copying it */
      n = recv_transfer(s, poll_until);
      ss.ss_family = AF_UNSPEC;
    }
    /* one recv per deadline: whatever comes next (JS, which may disarm, included)
       starts without one unless auto-advance sends another window */
    poll_until = 0;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      /* ICMP errors on a connected socket (ECONNREFUSED...) are reported, not fatal */
      int e = errno;
      if (!scope) napi_open_handle_scope(s->env, &scope);
      call_js(s, (double)-e);
      continue;
    }
    if (aa_try(s, n)) {
      poll_until = busy_poll_deadline(s);
      if (poll_until) continue;
      /* the peer waits for this window before it sends anything else worth reading: the
         recvfrom that would only return EAGAIN is left out (the poll is level-triggered,
         so a datagram already queued is read on the next turn of the loop) */
      break;
    }
    if (!scope) napi_open_handle_scope(s->env, &scope);
    write_info(s, &ss);
    call_js(s, (double)n);
  }
  if (scope) napi_close_handle_scope(s->env, scope);
}

static void update_poll(sock_t *s) {
  if (s->closing || !s->poll_started || s->broken) return;
  int want = (s->on_message ? UV_READABLE : 0) | (s->qhead ? UV_WRITABLE : 0);
  if (want == s->poll_events) return;
  s->poll_events = want;
  if (want) uv_poll_start(&s->poll, want, on_poll);
  else uv_poll_stop(&s->poll);
}

static void aa_disarm(sock_t *s);

static void release_js(sock_t *s) {
  napi_env env = s->env;
  aa_disarm(s);
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
  /* A kernel before 4.18 does not refuse the UDP_SEGMENT control message, it ignores it,
     and would send a whole window as one oversized datagram: ask the socket first. */
  {
    int gso = 0;
    socklen_t gl = sizeof gso;
    if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &gso, &gl) < 0) s->no_gso = 1;
  }
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
  sock_t *s = sock_args(env, info, &argc, argv);
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

/* start(h, recvBuffer, infoBuffer(24 bytes) | null, onMessage(len)) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  sock_t *s = sock_args(env, info, &argc, argv);
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
  s->loop = loop;
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
static sock_t *sock_and_bytes(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, size_t need, char **p, size_t *n) {
  sock_t *s = sock_args(env, info, argc, argv);
  if (!s) return NULL;
  if (*argc < need || get_bytes(env, argv[1], argv[2], argv[3], p, n) < 0) {
    napi_throw_range_error(env, NULL, "udp.node: bad buffer range");
    return NULL;
  }
  return s;
}

/* send(h, buf, offset, length) on a connected socket */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char *p;
  size_t n;
  sock_t *s = sock_and_bytes(env, info, &argc, argv, 4, &p, &n);
  if (!s) return NULL;
  return result_int(env, send_or_queue(s, p, n, NULL, 0, 0));
}

/* sendTo(h, buf, offset, length, port, address[, ifindex]) on an unconnected socket */
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  char *p;
  size_t n;
  sock_t *s = sock_and_bytes(env, info, &argc, argv, 6, &p, &n);
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

/* The ring's datagram i of a window: slot (first + i) % slots; every one is `stride`
   bytes but the window's last (`last_len`). */
static inline char *ring_slot(char *data, uint32_t stride, uint32_t slots, uint32_t first, uint32_t i) {
  return data + (size_t)((first + i) % slots) * stride;
}

/* datagrams i.. of the window with sendmmsg (up to MAX_WINDOW): 0 and *done, or -errno */
static int send_window_mmsg(sock_t *s, char *data, uint32_t stride, uint32_t slots, uint32_t first, uint32_t count, uint32_t last_len, uint32_t i, uint32_t *done) {
  struct mmsghdr msgs[MAX_WINDOW];
  struct iovec iov[MAX_WINDOW];
  uint32_t n = count - i < MAX_WINDOW ? count - i : MAX_WINDOW;
  *done = 0;
  if (n == 1) { /* lock-step: a plain send() is a little cheaper than a one-message sendmmsg */
    for (;;) {
      if (send(s->fd, ring_slot(data, stride, slots, first, i), i == count - 1 ? last_len : stride, MSG_DONTWAIT) >= 0) {
        *done = 1;
        return 0;
      }
      if (errno != EINTR) return -errno;
    }
  }
  memset(msgs, 0, sizeof(struct mmsghdr) * n);
  for (uint32_t k = 0; k < n; k++) {
    iov[k].iov_base = ring_slot(data, stride, slots, first, i + k);
    iov[k].iov_len = i + k == count - 1 ? last_len : stride;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  *done = 0;
  for (;;) {
    int r = sendmmsg(s->fd, msgs, n, MSG_DONTWAIT);
    if (r > 0) {
      *done = (uint32_t)r;
      return 0;
    }
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -errno : -EAGAIN;
  }
}

/*
 * Datagrams i.. of the window as one UDP GSO send (UDP_SEGMENT, Linux >= 4.18): the
 * ring's slots are consecutive `stride`-byte datagrams, exactly the layout GSO cuts a
 * buffer into, so a window crosses the stack as one packet and is split just before
 * the device (in hardware where the NIC offers it). On the wire nothing changes: the
 * same datagrams. Measured on loopback with 20 windowed clients: the receivers were
 * woken ~5 times per window by one datagram after another arriving from sendmmsg, and
 * spent 45 % more CPU than against atftpd (docs/benchmarks.md); a GSO window is
 * queued on the receiver all at once.
 * Returns 0 and *done, -EAGAIN, another -errno, or 1 when the socket cannot do GSO
 * (no checksum offload: EIO; a datagram bigger than the path MTU: EINVAL...): the
 * caller then uses sendmmsg for good on this socket.
 */
#define GSO_MAX_SEGMENTS 64   /* UDP_MAX_SEGMENTS of the oldest kernels with GSO */
#define GSO_MAX_BYTES 65000u  /* one UDP payload: under 65507 */
/* Windows of more datagrams than this are not sent with GSO at all: a window lands on
   the receiver faster than it reads, and ~64 full-size datagrams is what a default
   socket buffer (rmem_default 208 KiB, ~2.3 KiB truesize each) holds. atftp at
   windowsize 300 overflowed it on every window (tens of thousands of retransmissions);
   sendmmsg's per-datagram cost paces such windows, as before. */
#define GSO_MAX_WINDOW 64
static int send_window_gso(sock_t *s, char *data, uint32_t stride, uint32_t slots, uint32_t first, uint32_t count, uint32_t last_len, uint32_t i, uint32_t *done) {
  uint32_t k = count - i;
  if (k > GSO_MAX_SEGMENTS) k = GSO_MAX_SEGMENTS;
  if (k > GSO_MAX_BYTES / stride) k = GSO_MAX_BYTES / stride;
  *done = 0;
  if (k < 2) return send_window_mmsg(s, data, stride, slots, first, count, last_len, i, done);
  uint32_t tail_len = i + k == count ? last_len : stride; /* the batch's last datagram */
  uint32_t a = (first + i) % slots;
  uint32_t run = slots - a < k ? slots - a : k; /* datagrams before the ring wraps */
  struct iovec iov[2];
  int niov = 1;
  iov[0].iov_base = data + (size_t)a * stride;
  if (run == k) {
    iov[0].iov_len = (size_t)(k - 1) * stride + tail_len;
  } else {
    iov[0].iov_len = (size_t)run * stride;
    iov[1].iov_base = data;
    iov[1].iov_len = (size_t)(k - run - 1) * stride + tail_len;
    niov = 2;
  }
  char control[CMSG_SPACE(sizeof(uint16_t))];
  memset(control, 0, sizeof control);
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = iov;
  mh.msg_iovlen = niov;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t gso_size = (uint16_t)stride;
  memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
  for (;;) {
    if (sendmsg(s->fd, &mh, MSG_DONTWAIT) >= 0) {
      s->gso_batches++;
      *done = k;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EMSGSIZE) return 1;
    return -errno;
  }
}

/* Sends `count` datagrams from a ring of `slots` slots of `stride` bytes, starting at
   slot `first` and wrapping; each is `stride` bytes except the last (`last_len`).
   0, or -errno for a hard error (ICMP refused...: it applies to the socket, the rest
   of the window would fail the same way); a full socket buffer queues the rest. */
static int send_ring(sock_t *s, void *ring, uint32_t stride, uint32_t slots, uint32_t first, uint32_t count, uint32_t last_len) {
  char *data = ring;
  uint32_t i = 0;
  while (i < count && !s->qhead) {
    uint32_t done = 0;
    /* one GSO batch per window, at its head (the rest of a window over ~64 KiB with
       sendmmsg), and none for windows over GSO_MAX_WINDOW */
    int r = s->no_gso || i > 0 || count < 2 || count > GSO_MAX_WINDOW ? send_window_mmsg(s, data, stride, slots, first, count, last_len, i, &done)
                                            : send_window_gso(s, data, stride, slots, first, count, last_len, i, &done);
    if (r == 1) {
      s->no_gso = 1;
      continue;
    }
    i += done;
    if (r == -EAGAIN || r == -EWOULDBLOCK) break;
    if (r < 0) return r;
  }
  /* the socket buffer is full: the rest waits in the queue, in order */
  for (; i < count; i++) {
    int e = enqueue(s, ring_slot(data, stride, slots, first, i), i == count - 1 ? last_len : stride, NULL, 0, 0);
    if (e < 0) return e;
  }
  return 0;
}

#define BW_OUTSIDE (-1)
#define BW_SHORT (-2)

/* Writes the TFTP DATA packets (RFC 1350 sec. 5: opcode 3, 16-bit block number,
   payload) of blocks first_block .. first_block+count-1 of fw's file into their ring
   slots (slot = block % slots). Returns the length of the last packet (all others are
   4 + blksize), or BW_OUTSIDE / BW_SHORT when a block is not inside the chunks given:
   every copy is bounds-checked. */
static int64_t build_window(const file_window_t *fw, double first_block, uint32_t count) {
  uint32_t last_len = 0;
  for (uint32_t i = 0; i < count; i++) {
    double b = first_block + i;
    double off = (b - 1) * fw->blksize;
    double remaining = fw->file_size - off;
    uint32_t len = remaining <= 0 ? 0 : remaining < fw->blksize ? (uint32_t)remaining : fw->blksize;
    char *dst = fw->ring + (size_t)((uint64_t)b % fw->slots) * fw->stride;
    uint32_t bn = (uint32_t)((uint64_t)b & 0xffff); /* block numbers roll over (RFC 1350 has 16 bits) */
    dst[0] = 0;
    dst[1] = 3;
    dst[2] = (char)(bn >> 8);
    dst[3] = (char)(bn & 0xff);
    uint32_t copied = 0;
    while (copied < len) {
      double pos = off + copied;
      double ci_abs = (double)(uint64_t)(pos / fw->chunk_size);
      if (ci_abs < fw->first_chunk || ci_abs - fw->first_chunk >= fw->nchunks) return BW_OUTSIDE;
      uint32_t ci = (uint32_t)(ci_abs - fw->first_chunk);
      size_t within = (size_t)(pos - ci_abs * fw->chunk_size);
      if (within >= fw->clen[ci]) return BW_SHORT;
      size_t n = len - copied;
      if (n > fw->clen[ci] - within) n = fw->clen[ci] - within;
      memcpy(dst + 4 + copied, fw->cdata[ci] + within, n);
      copied += (uint32_t)n;
    }
    last_len = 4 + len;
  }
  return last_len;
}

/* Sends `count` DATA packets built by build_window from block first_block (their ring
   slots are consecutive, wrapping): send_ring's result. */
static int send_file_window(sock_t *s, const file_window_t *fw, double first_block, uint32_t count, int64_t last_len) {
  return send_ring(s, fw->ring, fw->stride, fw->slots, (uint32_t)((uint64_t)first_block % fw->slots), count, (uint32_t)last_len);
}

/* Reads (ring, stride, slots, blksize, fileSize, chunkSize, firstChunk, chunks[]) from
   v[0..7] into *fw, checked: every slot inside the ring, blksize fits a slot, at most
   MAX_CHUNKS chunks. With `refs`, takes a reference on each chunk. 0, or -1 after a
   throw ("bad <what>" for a range that does not fit). */
static int get_file_window(napi_env env, napi_value *v, file_window_t *fw, napi_ref *refs, const char *what) {
  memset(fw, 0, sizeof *fw);
  void *ring;
  size_t ring_len;
  if (napi_get_buffer_info(env, v[0], &ring, &ring_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: ring must be a Buffer");
    return -1;
  }
  fw->ring = ring;
  napi_get_value_uint32(env, v[1], &fw->stride);
  napi_get_value_uint32(env, v[2], &fw->slots);
  napi_get_value_uint32(env, v[3], &fw->blksize);
  napi_get_value_double(env, v[4], &fw->file_size);
  napi_get_value_double(env, v[5], &fw->chunk_size);
  napi_get_value_uint32(env, v[6], &fw->first_chunk);
  if (napi_get_array_length(env, v[7], &fw->nchunks) != napi_ok) {
    napi_throw_type_error(env, NULL, "udp.node: chunks must be an array of Buffers");
    return -1;
  }
  if (fw->stride < 4 || fw->blksize == 0 || fw->blksize > fw->stride - 4 || fw->slots == 0 || (size_t)fw->stride * fw->slots > ring_len ||
      fw->chunk_size < 1 || fw->file_size < 0 || fw->nchunks > MAX_CHUNKS) {
    char msg[64];
    snprintf(msg, sizeof msg, "udp.node: bad %s", what);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  for (uint32_t i = 0; i < fw->nchunks; i++) {
    napi_value c;
    void *d = NULL;
    size_t l = 0;
    if (napi_get_element(env, v[7], i, &c) != napi_ok || napi_get_buffer_info(env, c, &d, &l) != napi_ok) {
      for (uint32_t j = 0; refs && j < i; j++) napi_delete_reference(env, refs[j]);
      napi_throw_type_error(env, NULL, "udp.node: chunks must be an array of Buffers");
      return -1;
    }
    fw->cdata[i] = d;
    fw->clen[i] = l;
    if (refs) napi_create_reference(env, c, 1, &refs[i]);
  }
  return 0;
}

/*
 * sendFileWindow(h, firstBlock, count, ring, stride, slots, blksize, fileSize, chunkSize,
 *                firstChunk, chunks[]) on a connected socket: builds the TFTP DATA
 * packets of blocks firstBlock .. firstBlock+count-1 (build_window), each into its ring
 * slot, and sends them (send_ring). The protocol decisions (which blocks, when) stay in
 * transfer.ts; this only replaces its per-block header write and Buffer#copy (a
 * typed-array allocation and argument checks per block, ~4 % of a lock-step profile).
 */
static napi_value js_send_file_window(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  sock_t *s = sock_args(env, info, &argc, argv);
  if (!s) return NULL;
  if (argc < 11) {
    napi_throw_type_error(env, NULL, "udp.node: sendFileWindow needs 11 arguments");
    return NULL;
  }
  double first_block = 0;
  uint32_t count = 0;
  napi_get_value_double(env, argv[1], &first_block);
  napi_get_value_uint32(env, argv[2], &count);
  file_window_t fw;
  if (get_file_window(env, argv + 3, &fw, NULL, "window") < 0) return NULL;
  if (count == 0 || count > fw.slots || first_block < 1) {
    napi_throw_range_error(env, NULL, "udp.node: bad window");
    return NULL;
  }
  int64_t last_len = build_window(&fw, first_block, count);
  if (last_len == BW_OUTSIDE) {
    napi_throw_range_error(env, NULL, "udp.node: block outside the chunks given");
    return NULL;
  }
  if (last_len == BW_SHORT) {
    napi_throw_range_error(env, NULL, "udp.node: chunk shorter than the file");
    return NULL;
  }
  return result_int(env, send_file_window(s, &fw, first_block, count, last_len));
}

static void aa_disarm(sock_t *s) {
  auto_advance_t *a = &s->aa;
  napi_env env = s->env;
  if (a->armed) __atomic_sub_fetch(&armed_transfers, 1, __ATOMIC_RELAXED);
  if (a->state_ref) napi_delete_reference(env, a->state_ref);
  if (a->ring_ref) napi_delete_reference(env, a->ring_ref);
  for (uint32_t i = 0; i < a->fw.nchunks; i++)
    if (a->cref[i]) napi_delete_reference(env, a->cref[i]);
  memset(a, 0, sizeof *a);
}

/* the loop's cached clock (ms, updated once per turn): no clock_gettime per window */
static double now_ms(uv_loop_t *loop) { return loop ? (double)uv_now(loop) : 0; }

/* Called for each received datagram before JS: 1 when it was the in-order ACK of the
   whole outstanding window and the next window went out from the armed chunks. */
static int aa_try(sock_t *s, ssize_t n) {
  auto_advance_t *a = &s->aa;
  if (!a->armed || n != 4) return 0;
  const uint8_t *d = (const uint8_t *)s->recv_data;
  if (d[0] != 0 || d[1] != 4) return 0;
  const file_window_t *fw = &a->fw;
  double *st = a->state;
  double acked = st[AA_LAST_ACKED], sent = st[AA_SENT_UP_TO];
  /* only the ACK of the highest block sent, when it is new and more is left to send
     (the ACK that ends the transfer is transfer.ts's business) */
  if (!(acked < sent) || sent >= a->total_blocks) return 0;
  if ((((uint32_t)d[2] << 8) | d[3]) != (uint32_t)((uint64_t)sent & 0xffff)) return 0;
  double first = sent + 1;
  double last = sent + a->windowsize < a->total_blocks ? sent + a->windowsize : a->total_blocks;
  uint32_t count = (uint32_t)(last - first + 1);
  if (count > fw->slots) return 0;
  /* a block outside the armed chunks: JS loads the next ones and sends this window
     itself (rebuilding the slots build_window may have begun to fill) */
  int64_t last_len = build_window(fw, first, count);
  if (last_len < 0) return 0;
  double start_off = (first - 1) * fw->blksize;
  double end_off = last * fw->blksize < fw->file_size ? last * fw->blksize : fw->file_size;
  /* a send error (ICMP refused...) is the timer's business, as on the JS path */
  send_file_window(s, fw, first, count, last_len);
  st[AA_LAST_ACKED] = sent;
  st[AA_SENT_UP_TO] = last;
  st[AA_LAST_SEND_MS] = now_ms(s->loop);
  st[AA_WINDOWS] += 1;
  st[AA_PACKETS] += count;
  st[AA_BYTES] += end_off > start_off ? end_off - start_off : 0;
  return 1;
}

/*
 * autoAdvance(h, state: Float64Array(9), windowsize, ring, stride, slots, blksize,
 *             fileSize, chunkSize, firstChunk, chunks[]) arms the socket (see
 * auto_advance_t); autoAdvance(h, null) disarms it. The caller must disarm before it
 * lets go of any chunk given (references are kept, but the chunk cache recycles
 * released buffers).
 */
static napi_value js_auto_advance(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  sock_t *s = sock_args(env, info, &argc, argv);
  if (!s) return NULL;
  aa_disarm(s);
  napi_valuetype t = napi_null;
  if (argc > 1) napi_typeof(env, argv[1], &t);
  if (t == napi_null || t == napi_undefined) return NULL;
  if (argc < 11) {
    napi_throw_type_error(env, NULL, "udp.node: autoAdvance needs 11 arguments");
    return NULL;
  }
  napi_typedarray_type tt;
  size_t st_len = 0;
  void *st_data = NULL;
  if (napi_get_typedarray_info(env, argv[1], &tt, &st_len, &st_data, NULL, NULL) != napi_ok || tt != napi_float64_array || st_len < AA_STATE_LEN) {
    napi_throw_type_error(env, NULL, "udp.node: state must be a Float64Array of 9");
    return NULL;
  }
  auto_advance_t a;
  memset(&a, 0, sizeof a);
  napi_get_value_uint32(env, argv[2], &a.windowsize);
  if (a.windowsize == 0) {
    napi_throw_range_error(env, NULL, "udp.node: bad auto-advance window");
    return NULL;
  }
  if (get_file_window(env, argv + 3, &a.fw, a.cref, "auto-advance window") < 0) return NULL;
  a.total_blocks = (double)(uint64_t)(a.fw.file_size / a.fw.blksize) + 1;
  a.state = st_data;
  napi_create_reference(env, argv[1], 1, &a.state_ref);
  napi_create_reference(env, argv[3], 1, &a.ring_ref);
  a.armed = 1;
  s->aa = a;
  __atomic_add_fetch(&armed_transfers, 1, __ATOMIC_RELAXED);
  return NULL;
}

/* nowMs() -> the clock auto-advance stamps its sends with: the calling thread's loop
   time (uv_now, ms) */
static napi_value js_now_ms(napi_env env, napi_callback_info info) {
  (void)info;
  uv_loop_t *loop = NULL;
  napi_get_uv_event_loop(env, &loop);
  napi_value r;
  napi_create_double(env, now_ms(loop), &r);
  return r;
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

/* stats(h) -> [queuedTotal, droppedTotal, queuedNow, gsoBatches, gsoOff] */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  sock_t *s = sock_args(env, info, &argc, argv);
  if (!s) return NULL;
  napi_value arr, v;
  CHECK(napi_create_array_with_length(env, 5, &arr));
  napi_create_double(env, s->queued_total, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_double(env, s->dropped_total, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_double(env, s->qcount, &v);
  napi_set_element(env, arr, 2, v);
  napi_create_double(env, s->gso_batches, &v);
  napi_set_element(env, arr, 3, v);
  napi_create_double(env, s->no_gso, &v);
  napi_set_element(env, arr, 4, v);
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
      {"autoAdvance", NULL, js_auto_advance, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nowMs", NULL, js_now_ms, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
