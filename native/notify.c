/*
 * The sending half of systemd's notification protocol (sd_notify(3)): one
 * datagram of "KEY=value" lines to the AF_UNIX socket the service manager
 * names in $NOTIFY_SOCKET. Node has no AF_UNIX datagram sockets, hence this.
 *
 * Must not know: what the states mean, or where the path comes from (the JS
 * side, shim/daemon/service-notify.ts, reads the environment).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "notify.h"
#include "napi-util.h"

#define MAX_STATE 4096

/*
 * notify(path: string, state: string) -> 0 or -errno
 * `path` is a file system path, or "@name" for the abstract namespace (the
 * '@' becomes the leading NUL). Never throws for the kernel's refusal: the
 * caller decides what a lost notification means.
 */
napi_value notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "EINVAL", "notify(path, state)");
    return NULL;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  char path[sizeof sa.sun_path + 1];
  size_t plen = 0;
  char state[MAX_STATE + 1];
  size_t slen = 0;
  if (utf8_arg(env, argv[0], path, sizeof path, &plen) != napi_ok ||
      utf8_arg(env, argv[1], state, sizeof state, &slen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "notify: path and state must be strings");
    return NULL;
  }
  int rc = 0;
  socklen_t salen = 0;
  if (plen == 0 || (path[0] != '/' && path[0] != '@')) {
    rc = -EINVAL;
  } else if (plen >= sizeof sa.sun_path || slen >= MAX_STATE) {
    rc = -ENAMETOOLONG;
  } else {
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') {
      sa.sun_path[0] = '\0';
      salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    } else {
      salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      rc = -errno;
    } else {
      ssize_t n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
      if (n < 0) rc = -errno;
      else if ((size_t)n != slen) rc = -EMSGSIZE;
      close(fd);
    }
  }
  napi_create_int32(env, rc, &out);
  return out;
}
