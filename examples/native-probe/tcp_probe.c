/* A trusted native probe in C: is the daemon at `address` (host:port) accepting
 * connections, and what does it say? With `send`, sends that text plus "\r\n" and reports
 * the first line of the reply (e.g. `send = "PING"` for Redis).
 *
 *     cc -shared -fPIC -O2 -o libtcp_probe.so tcp_probe.c
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtest_probe.h"

uint32_t mtest_probe_abi_version(void) { return MTEST_PROBE_ABI_VERSION; }

static const char *setting(const mtest_probe_setting *s, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].key, key) == 0) return s[i].value;
    return NULL;
}

int32_t mtest_probe_check(const mtest_probe_setting *settings, size_t n_settings,
                          const mtest_probe_context *context, char *out, size_t out_len) {
    (void)context;
    const char *address = setting(settings, n_settings, "address");
    if (!address) {
        snprintf(out, out_len, "no `address` setting (host:port)");
        return 1;
    }
    char host[256];
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof host) {
        snprintf(out, out_len, "address %s is not host:port", address);
        return 1;
    }
    memcpy(host, address, colon - address);
    host[colon - address] = '\0';

    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, colon + 1, &hints, &found);
    if (rc != 0) {
        snprintf(out, out_len, "%s: cannot resolve: %s", address, gai_strerror(rc));
        return 1;
    }
    int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (fd < 0 || connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
        snprintf(out, out_len, "%s: unreachable (%s)", address, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(found);
        return 0; /* an answer: the daemon is down */
    }
    freeaddrinfo(found);
    int n = snprintf(out, out_len, "%s: reachable", address);
    const char *send_text = setting(settings, n_settings, "send");
    if (send_text && n > 0 && (size_t)n < out_len) {
        char line[512];
        snprintf(line, sizeof line, "%s\r\n", send_text);
        if (write(fd, line, strlen(line)) > 0) {
            struct pollfd p = {fd, POLLIN, 0};
            ssize_t got = poll(&p, 1, 2000) > 0 ? read(fd, line, sizeof line - 1) : 0;
            if (got > 0) {
                line[got] = '\0';
                line[strcspn(line, "\r\n")] = '\0';
                snprintf(out + n, out_len - n, "; replied to %s: %s", send_text, line);
            } else {
                snprintf(out + n, out_len - n, "; no reply to %s", send_text);
            }
        }
    }
    close(fd);
    return 0;
}
