/*
 * The resolver bench's interleaved miss client (bench/resolver.ts, interleavedLatency):
 * several DNS servers asked in turn by one client, so that their miss
 * latencies share every state of the machine without ever running at once.
 *
 *   _miss-client SECONDS RATE PREFIX TARGET...
 *   TARGET: PORT:a (an AAAA question, as an application asks a stub), PORT:u (an
 *   AAAA question as a stub asks its upstream: AD set and 0x20 letter case) or
 *   PORT:p (the pair a stub with pickup sends its upstream: TYPE65300 and AAAA,
 *   each as PORT:u's, in one UDP GSO send, done when both are answered)
 *
 * Every 1/RATE s each target is asked once about a name of its own turn
 * (PREFIX<turn>.bench.; the same name for every target of a turn, so each
 * server asks Knot the same questions), the targets spread evenly over the
 * period, their order rotated every period: each target's slot moves by one
 * every period, so a server is asked after 4/5 of a period four times of five
 * and after 9/5 once (with 5 targets), a steady rate as dnsperf's; each target
 * always follows the same other one (its predecessor in the list), which moved
 * the pickup's ratio by about 1 % when the stubs' places were swapped. A fresh
 * random order every period (tried, history) spreads the gaps from 1/5 to 9/5
 * of a period, and the shorter ones find the stub's caches warm. Each server
 * thus sees RATE misses per second, as dnsperf -Q RATE, and
 * no two questions are ever in flight at once unless an answer takes longer
 * than a slot: a 2-CPU machine does not make one server wait for another's work.
 * The client waits for answers in poll(), as dnsperf and an application's
 * resolver library do: its wake-up is in every target's figure alike.
 *
 * Prints one line per target: PORT KIND ASKED ANSWERED P50 P10 P90 (µs).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_TARGETS 8
#define CAP_TYPE 65300
#define AAAA_TYPE 28
/* After the last question, answers are awaited this long (later ones are lost). */
#define LATE_NS 1000000000LL

/*
 * Sockets per target, one picked at random per question: a server with
 * SO_REUSEPORT workers (Knot) hands each source port to one of them, and a
 * single port would measure one worker for a whole run, where a stub's
 * upstream questions leave from a pool of random ports.
 */
#define PORTS 16

struct target {
  int port, pair, upstream, fd[PORTS];
  long asked, answered;
  long long *sent;   /* ns, per turn */
  uint8_t *due;      /* answers still due, per turn: 1 the AAAA question's, 2 the record question's */
  double *lat;       /* µs */
};

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A query for `name` (dotted, ending in '.'), RD set, an OPT of 1232 (as the stub's upstream questions). */
static size_t query(uint8_t *b, uint16_t id, const char *name, uint16_t qtype) {
  size_t o = 12;
  memset(b, 0, 12);
  b[0] = id >> 8; b[1] = id & 0xff; b[2] = 0x01; b[5] = 1; b[11] = 1;
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    b[o++] = (uint8_t)n;
    memcpy(b + o, p, n);
    o += n;
    p += n + (dot ? 1 : 0);
  }
  b[o++] = 0;
  b[o++] = qtype >> 8; b[o++] = qtype & 0xff; b[o++] = 0; b[o++] = 1;
  /* OPT: root, type 41, size 1232, no flags, no options */
  const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
  memcpy(b + o, opt, sizeof opt);
  return o + sizeof opt;
}

/*
 * The question of `b` (`len` octets) as a stub asks its upstream (resolver/answer-build.ts,
 * resolver/upstream-case.ts): AD set, and every letter of the name in a random case.
 */
static void as_upstream(uint8_t *b, size_t len) {
  b[3] |= 0x20;
  for (size_t o = 12; o < len - 11 - 4; o++) if (b[o] >= 'a' && b[o] <= 'z' && (random() & 1)) b[o] -= 'a' - 'A';
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Turn `turn`'s question(s) to `t`: the AAAA question's ID is 2·turn, the record question's 2·turn + 1 (mod 2^16). */
static void ask(struct target *t, const char *name, long turn) {
  uint8_t buf[1024];
  uint16_t id = (uint16_t)(2 * turn);
  size_t len = query(buf, id, name, AAAA_TYPE);
  if (t->upstream) as_upstream(buf, len);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  t->due[turn] = t->pair ? 3 : 1;
  int fd = t->fd[random() % PORTS];
  if (t->pair) {
    /* The record question first, then the address question (its own letter case), in one GSO send, as the stub's. */
    buf[1] |= 1;
    size_t q = len - 11 - 4;
    buf[q] = CAP_TYPE >> 8; buf[q + 1] = CAP_TYPE & 0xff;
    query(buf + len, id, name, AAAA_TYPE);
    as_upstream(buf + len, len);
    struct iovec iov = {.iov_base = buf, .iov_len = 2 * len};
    char ctl[CMSG_SPACE(sizeof(uint16_t))] = {0};
    struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)len;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
    t->sent[turn] = now_ns();
    if (sendmsg(fd, &m, 0) < 0) { perror("sendmsg"); exit(1); }
  } else {
    t->sent[turn] = now_ns();
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("sendto"); exit(1); }
  }
  t->asked++;
}

/*
 * Read every waiting answer of `t`. Its turn is the latest one up to `turns` whose IDs it has
 * (IDs wrap after 32,768 turns; a turn's answers come long before); a copy, or an answer of a
 * turn already done, does not count.
 */
static void drain(struct target *t, int fd, long turns) {
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) return;
    long long at = now_ns();
    if (n < 12) continue;
    uint16_t id = (uint16_t)(buf[0] << 8 | buf[1]);
    if ((id & 1) && !t->pair) continue;
    long turn = id >> 1;
    while (turn + 32768 < turns && t->sent[turn + 32768]) turn += 32768;
    if (turn >= turns || !t->due[turn]) continue;
    uint8_t bit = (id & 1) ? 2 : 1;
    if (!(t->due[turn] & bit)) continue;
    t->due[turn] &= (uint8_t)~bit;
    if (t->due[turn] == 0) t->lat[t->answered++] = (double)(at - t->sent[turn]) / 1000.0;
  }
}

static void readable(const struct pollfd *pf, nfds_t nf, struct target *ts, long turns) {
  for (nfds_t i = 0; i < nf; i++) if (pf[i].revents & POLLIN) drain(&ts[i / PORTS], pf[i].fd, turns);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s SECONDS RATE PREFIX PORT:a|PORT:p...\n", argv[0]);
    return 2;
  }
  double seconds = atof(argv[1]), rate = atof(argv[2]);
  const char *prefix = argv[3];
  int n = argc - 4;
  if (n > MAX_TARGETS || seconds <= 0 || rate <= 0) { fprintf(stderr, "bad arguments\n"); return 2; }
  long turns = (long)(seconds * rate);
  struct target ts[MAX_TARGETS];
  struct pollfd pf[MAX_TARGETS * PORTS];
  nfds_t nf = 0;
  for (int i = 0; i < n; i++) {
    struct target *t = &ts[i];
    char kind = 0;
    if (sscanf(argv[4 + i], "%d:%c", &t->port, &kind) != 2 || (kind != 'a' && kind != 'u' && kind != 'p')) { fprintf(stderr, "bad target %s\n", argv[4 + i]); return 2; }
    t->pair = kind == 'p';
    t->upstream = kind != 'a';
    for (int j = 0; j < PORTS; j++) {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof any) < 0) { perror("socket"); return 1; }
      t->fd[j] = fd;
      pf[i * PORTS + j].fd = fd;
      pf[i * PORTS + j].events = POLLIN;
    }
    t->asked = t->answered = 0;
    t->sent = calloc((size_t)turns, sizeof(long long));
    t->due = calloc((size_t)turns, 1);
    t->lat = calloc((size_t)turns, sizeof(double));
    if (!t->sent || !t->due || !t->lat) { perror("calloc"); return 1; }
  }
  nf = (nfds_t)(n * PORTS);
  srandom((unsigned)getpid());
  long long period = (long long)(1e9 / rate), slot = period / n;
  long long start = now_ns() + 1000000;
  char name[256];
  /* Every answer is read as soon as it is in; each question leaves at its slot. */
  for (long turn = 0; turn < turns; turn++) {
    snprintf(name, sizeof name, "%s%ld.bench.", prefix, turn);
    for (int k = 0; k < n; k++) {
      long long at = start + turn * period + k * slot;
      for (;;) {
        long long left = at - now_ns();
        if (left <= 0) break;
        /* poll counts whole ms: the rest of the wait (under 1 ms) sleeps */
        int r = poll(pf, nf, (int)(left / 1000000));
        if (r > 0) { readable(pf, nf, ts, turn + 1); continue; }
        left = at - now_ns();
        if (left > 0 && left < 1000000) {
          r = ppoll(pf, nf, &(struct timespec){0, (long)left}, NULL);
          if (r > 0) readable(pf, nf, ts, turn + 1);
        }
      }
      ask(&ts[(k + turn) % n], name, turn);
    }
  }
  /* The last answers, for at most LATE_NS. */
  long long end = now_ns() + LATE_NS;
  for (;;) {
    long left = end - now_ns();
    if (left <= 0) break;
    int r = poll(pf, nf, (int)(left / 1000000) + 1);
    if (r > 0) readable(pf, nf, ts, turns);
    int done = 1;
    for (int i = 0; i < n; i++) if (ts[i].answered < ts[i].asked) done = 0;
    if (done) break;
  }
  for (int i = 0; i < n; i++) {
    struct target *t = &ts[i];
    qsort(t->lat, (size_t)t->answered, sizeof(double), cmp);
    double p50 = t->answered ? t->lat[t->answered / 2] : -1, p10 = t->answered ? t->lat[t->answered / 10] : -1, p90 = t->answered ? t->lat[t->answered * 9 / 10] : -1;
    printf("%d %c %ld %ld %.1f %.1f %.1f\n", t->port, t->pair ? 'p' : t->upstream ? 'u' : 'a', t->asked, t->answered, p50, p10, p90);
  }
  return 0;
}
