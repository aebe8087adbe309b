/* SPDX-License-Identifier: MIT */
/*
 * slow_http_server.c - test scaffolding for examples/fetch: a small HTTP/1.1
 * server on 127.0.0.1 that answers every request after a fixed delay, like a
 * slow web API, so that a test can tell requests made one after the other
 * from requests made at once. It needs nothing beyond pthreads (no Python).
 *
 *   slow_http_server [-d MS] [-n REQUESTS] [-t SECONDS] [-p FILE] [-b]
 *
 *   -d MS        answer each request MS milliseconds after reading it
 *                (default 200)
 *   -n REQUESTS  exit once that many requests were answered (default 0: no
 *                limit)
 *   -t SECONDS   exit after that long whatever happens (default 60; 0: never)
 *   -p FILE      also write the port to FILE (to FILE.tmp, then renamed)
 *   -b           background: detach once listening; the foreground process
 *                prints the port and exits 0, the server goes on with its
 *                standard streams on /dev/null (for a cmake -P script, whose
 *                execute_process() waits for what it starts)
 *
 * It listens on an ephemeral port of 127.0.0.1 and prints it on stdout
 * ("PORT\n"), then serves one thread per connection, one request per
 * connection (Connection: close):
 *
 *   GET /item/N    200, after the delay: {"id": N, "title": "item N", ...}
 *   GET /missing   404, after the delay: "not found"
 *   GET /quit      200 at once, then the server exits
 *   other GETs     404 after the delay; other methods 405; garbage 400
 *
 * It exits after -n answers, on GET /quit, on SIGTERM, SIGINT or SIGHUP, or
 * after -t seconds, so that a test that fails halfway never leaves it
 * running. It stops accepting, waits (a few seconds at most) for the
 * answers in progress, and exits 0, or 1 when -t expired first.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX 8192         /* longest request head read */
#define READ_TIMEOUT_S 5         /* a client silent that long is dropped */
#define THREAD_STACK (128 * 1024)

static long delay_ms = 200;
static long max_requests;        /* 0: no limit */

static atomic_bool stopping;     /* -n reached or GET /quit */
static volatile sig_atomic_t stop_signal;

/* Connection threads alive, and answers sent (the -n count). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle = PTHREAD_COND_INITIALIZER;
static long active;
static long answered;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sends all of buf; false when the client went away. */
static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads the request head (up to the blank line) into buf, NUL-terminated.
 * Returns its length, or -1 when the client closed, timed out, or sent more
 * than fits. */
static ssize_t read_head(int fd, char *buf, size_t size)
{
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
            return (ssize_t)len;
    }
    return -1;
}

/* N of "/item/N" (1 to 9 digits), or -1. */
static long item_number(const char *target)
{
    const char *p = target + strlen("/item/");
    if (strncmp(target, "/item/", strlen("/item/")) != 0 || *p == '\0')
        return -1;
    long n = 0;
    for (int digits = 0; *p != '\0'; p++, digits++) {
        if (*p < '0' || *p > '9' || digits == 9)
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n;
}

static void respond(int fd, int status, const char *reason, const char *body)
{
    char head[256];
    size_t body_len = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     status, reason, status == 200 ? "application/json" : "text/plain",
                     body_len);
    if (n > 0 && (size_t)n < sizeof head && send_all(fd, head, (size_t)n))
        send_all(fd, body, body_len);
}

/* One connection: read the request, wait, answer, close. */
static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct timeval tv = {READ_TIMEOUT_S, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    char req[REQUEST_MAX];
    char method[16], target[1024], version[16];
    bool quit = false, answer = true;
    if (read_head(fd, req, sizeof req) < 0) {
        answer = false; /* closed or silent: nothing to answer */
    } else if (sscanf(req, "%15s %1023s %15s", method, target, version) != 3 ||
               strncmp(version, "HTTP/1.", 7) != 0) {
        respond(fd, 400, "Bad Request", "bad request\n");
    } else if (strcmp(method, "GET") != 0) {
        respond(fd, 405, "Method Not Allowed", "only GET\n");
    } else if (strcmp(target, "/quit") == 0) {
        respond(fd, 200, "OK", "bye\n");
        quit = true;
    } else {
        sleep_ms(delay_ms);
        long n = item_number(target);
        if (n >= 0) {
            char body[256];
            snprintf(body, sizeof body,
                     "{\"id\": %ld, \"title\": \"item %ld\", \"delay_ms\": %ld}\n",
                     n, n, delay_ms);
            respond(fd, 200, "OK", body);
        } else {
            respond(fd, 404, "Not Found", "not found\n");
        }
    }
    shutdown(fd, SHUT_WR);
    close(fd);

    pthread_mutex_lock(&lock);
    if (quit)
        atomic_store(&stopping, true);
    else if (answer && ++answered == max_requests)
        atomic_store(&stopping, true);
    active--;
    pthread_cond_broadcast(&idle);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "slow_http_server: %s: path too long\n", path);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        fprintf(stderr, "slow_http_server: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Detaches: the parent prints the port and exits; returns in the child,
 * with its standard streams on /dev/null. */
static int go_background(unsigned port)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("slow_http_server: fork");
        return -1;
    }
    if (pid > 0) {
        printf("%u\n", port);
        exit(fflush(stdout) == 0 ? 0 : 1);
    }
    (void)setsid(); /* cannot fail: a forked child leads no group */
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
        _exit(1);
    if (null > 2)
        close(null);
    return 0;
}

static long parse_long(const char *s, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        fprintf(stderr, "slow_http_server: bad %s '%s' (0 to %ld)\n", what, s, max);
        exit(2);
    }
    return v;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: slow_http_server [-d MS] [-n REQUESTS] [-t SECONDS] [-p FILE] [-b]\n"
                "  -d MS        answer each request after MS ms (default 200)\n"
                "  -n REQUESTS  exit after that many answers (default: no limit)\n"
                "  -t SECONDS   exit after that long in any case (default 60; 0: never)\n"
                "  -p FILE      also write the port to FILE\n"
                "  -b           detach once listening (prints the port, then exits)\n"
                "Serves GET /item/N (200), /missing (404), /quit (exit) on 127.0.0.1.\n");
}

int main(int argc, char **argv)
{
    long timeout_s = 60;
    const char *port_file = NULL;
    bool background = false;
    int opt;
    while ((opt = getopt(argc, argv, "d:n:t:p:bh")) != -1) {
        switch (opt) {
        case 'd': delay_ms = parse_long(optarg, 600000, "delay"); break;
        case 'n': max_requests = parse_long(optarg, LONG_MAX, "request count"); break;
        case 't': timeout_s = parse_long(optarg, 86400, "timeout"); break;
        case 'p': port_file = optarg; break;
        case 'b': background = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        perror("slow_http_server: sigaction");
        return 1;
    }
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0) {
        perror("slow_http_server: sigaction");
        return 1;
    }

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("slow_http_server: socket");
        return 1;
    }
    int one = 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0; /* ephemeral */
    socklen_t addr_len = sizeof addr;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(lfd, SOMAXCONN) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &addr_len) != 0) {
        perror("slow_http_server: listen on 127.0.0.1");
        close(lfd);
        return 1;
    }
    unsigned port = ntohs(addr.sin_port);

    if (port_file != NULL && write_port_file(port_file, port) != 0) {
        close(lfd);
        return 1;
    }
    /* Connections that arrive from here on wait in the listen backlog. */
    if (background) {
        if (go_background(port) != 0) {
            close(lfd);
            return 1;
        }
    } else {
        printf("%u\n", port);
        if (fflush(stdout) != 0) {
            perror("slow_http_server: stdout");
            close(lfd);
            return 1;
        }
    }

    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_attr_setstacksize(&attr, THREAD_STACK) != 0) {
        fprintf(stderr, "slow_http_server: pthread attributes failed\n");
        close(lfd);
        return 1;
    }

    double deadline = timeout_s > 0 ? now_s() + (double)timeout_s : 0;
    bool timed_out = false;
    while (!atomic_load(&stopping) && stop_signal == 0) {
        if (deadline > 0 && now_s() >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {lfd, POLLIN, 0};
        int ready = poll(&pfd, 1, 100); /* wakes to check the stop conditions */
        if (ready < 0 && errno != EINTR) {
            perror("slow_http_server: poll");
            break;
        }
        if (ready <= 0)
            continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                sleep_ms(10); /* out of descriptors: let connections finish */
            else if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
                perror("slow_http_server: accept");
            continue;
        }
        pthread_t thread;
        pthread_mutex_lock(&lock);
        active++;
        pthread_mutex_unlock(&lock);
        int rc = pthread_create(&thread, &attr, serve, (void *)(intptr_t)fd);
        if (rc != 0) {
            fprintf(stderr, "slow_http_server: pthread_create: %s\n", strerror(rc));
            close(fd); /* the client sees the connection closed */
            pthread_mutex_lock(&lock);
            active--;
            pthread_mutex_unlock(&lock);
        }
    }
    close(lfd);
    pthread_attr_destroy(&attr);

    /* Let the answers in progress go out: at most the delay plus the read
     * timeout, plus a second. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += delay_ms / 1000 + READ_TIMEOUT_S + 1;
    pthread_mutex_lock(&lock);
    while (active > 0)
        if (pthread_cond_timedwait(&idle, &lock, &until) == ETIMEDOUT)
            break;
    long left = active;
    pthread_mutex_unlock(&lock);
    if (left > 0)
        fprintf(stderr, "slow_http_server: exiting with %ld connections still open\n", left);
    if (timed_out)
        fprintf(stderr, "slow_http_server: timed out after %ld s\n", timeout_s);
    if (stop_signal != 0)
        fprintf(stderr, "slow_http_server: stopped by signal %d\n", (int)stop_signal);
    return timed_out ? 1 : 0;
}
