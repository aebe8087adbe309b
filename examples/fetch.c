/* SPDX-License-Identifier: MIT */
/*
 * fetch.c - many HTTP GET requests at once with libcurl, one blocking
 * request per task on the default pool, gathered in input order: the
 * classic asyncio + aiohttp "fetch_post" tutorial, in C.
 *
 *   ./build/examples/fetch [-m INDEX]... [-T SECONDS] BASE_URL [COUNT]
 *
 * GETs BASE_URL/item/1 .. BASE_URL/item/COUNT (COUNT: default 10) all at
 * once; with -m INDEX, request INDEX (1-based, repeatable) asks for
 * BASE_URL/missing instead, which the test server answers with a 404.
 * examples/slow_http_server is such a server (it answers after a delay):
 *
 *   port=$(./build/examples/slow_http_server -b -d 200 -n 64)
 *   ./build/examples/fetch -m 17 http://127.0.0.1:$port 64
 *
 * The Python program it rewrites, in its usual form:
 *
 *   import asyncio, time, aiohttp
 *
 *   async def fetch_post(session, post_id):
 *       async with session.get(f"{BASE}/item/{post_id}") as response:
 *           response.raise_for_status()          # a 404 raises
 *           return response.status, await response.text()
 *
 *   async def main():
 *       start = time.perf_counter()
 *       async with aiohttp.ClientSession() as session:
 *           results = await asyncio.gather(
 *               *(fetch_post(session, i) for i in range(1, 65)),
 *               return_exceptions=True)
 *       for i, r in enumerate(results, 1):       # input order
 *           print(i, r)
 *       print(f"took {time.perf_counter() - start:.3f} s")
 *
 *   asyncio.run(main())
 *
 * Here each request is a task that calls curl_easy_perform() on its own easy
 * handle and blocks in it until the answer is in. The tasks go to the
 * default pool (gather_submit(NULL, ...)), which is elastic: when its
 * threads block, it starts spare threads within a few milliseconds (up to
 * 512, GATHER_MAX_THREADS), so the requests wait for their answers all at
 * once, as asyncio's coroutines do, and 64 requests to a server that takes
 * 0.2 s each take about 0.2 s, not 64 x 0.2 s. No pool sizing by hand.
 *
 * A task fails the way a coroutine raises: an HTTP status >= 400 makes it
 * return that status as its code (404), a transport failure an errno value
 * (ECONNREFUSED, ETIMEDOUT, EIO for the others, ENOMEM), and in both cases
 * its *result is an error message (the payload). gather_futures() with
 * GATHER_RETURN_ERRORS (return_exceptions=True) waits for every request and
 * keeps each failure in its slot, so one 404 does not hide the 63 answers.
 *
 * Output: one line per request in input order (index, HTTP status, body
 * length, time, the body's first line or the error), then the total time.
 * Exit status: 0 when every request succeeded, 1 when some failed, 2 on bad
 * usage, 3 when the program itself could not run (libcurl, memory).
 */
#define _POSIX_C_SOURCE 200809L

#include <gather.h>

#include <curl/curl.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNT_MAX 100000
#define HEAD_MAX 256 /* bytes of each body kept, for its first line */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request: the task's argument, and what it leaves for main. */
typedef struct request {
    char *url;
    long timeout_s;
    /* written by the task */
    long status;            /* HTTP status, 0 when no answer came */
    size_t body_bytes;      /* the whole body's length */
    char head[HEAD_MAX];    /* its first bytes, NUL-terminated */
    size_t head_len;
    double seconds;         /* how long the request took */
    char error[CURL_ERROR_SIZE + 512]; /* the failure's payload */
} request;

/* CURLOPT_WRITEFUNCTION: counts the body and keeps its first bytes. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    request *req = user;
    size_t n = size * nmemb;
    size_t room = sizeof req->head - 1 - req->head_len;
    size_t keep = n < room ? n : room;
    memcpy(req->head + req->head_len, data, keep);
    req->head_len += keep;
    req->head[req->head_len] = '\0';
    req->body_bytes += n;
    return n;
}

/* The body's first line (at most 72 characters) into out. */
static void first_line(const request *req, char *out, size_t size)
{
    size_t len = strcspn(req->head, "\r\n");
    if (len > 72)
        len = 72;
    if (len >= size)
        len = size - 1;
    memcpy(out, req->head, len);
    out[len] = '\0';
}

static CURLcode setup(CURL *h, request *req, char *errbuf)
{
    CURLcode cc = curl_easy_setopt(h, CURLOPT_URL, req->url);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (cc == CURLE_OK) /* no signals: they are process-wide, we are threads */
        cc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_WRITEDATA, req);
    if (cc == CURLE_OK) /* aiohttp follows redirects too */
        cc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_TIMEOUT, req->timeout_s);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_USERAGENT, "gather-fetch/1");
    return cc;
}

/* The task's code for a transport failure. */
static int transport_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_OUT_OF_MEMORY: return ENOMEM;
    case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
    default: return EIO;
    }
}

/* The task: one GET, blocking in curl_easy_perform() on its own handle.
 * Succeeds with *result = the request; fails with the HTTP status (>= 400)
 * or an errno value, *result = the error message. */
static int fetch_one(void *arg, void **result)
{
    request *req = arg;
    double start = now_s();
    char errbuf[CURL_ERROR_SIZE] = "";

    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(req->error, sizeof req->error, "%s: curl_easy_init failed", req->url);
        *result = req->error;
        return ENOMEM;
    }
    CURLcode cc = setup(h, req, errbuf);
    if (cc == CURLE_OK)
        cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        cc = curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &req->status);
    curl_easy_cleanup(h);
    req->seconds = now_s() - start;

    if (cc != CURLE_OK) {
        snprintf(req->error, sizeof req->error, "%s: %s", req->url,
                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        *result = req->error;
        return transport_error(cc);
    }
    if (req->status >= 400) { /* response.raise_for_status() */
        char line[80];
        first_line(req, line, sizeof line);
        snprintf(req->error, sizeof req->error, "HTTP %ld from %s: %s", req->status,
                 req->url, line);
        *result = req->error;
        return (int)req->status;
    }
    *result = req;
    return 0;
}

static long parse_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "fetch: bad %s '%s' (%ld to %ld)\n", what, s, min, max);
        exit(2);
    }
    return v;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: fetch [-m INDEX]... [-T SECONDS] BASE_URL [COUNT]\n"
            "  GETs BASE_URL/item/1 .. BASE_URL/item/COUNT (default 10) at once.\n"
            "  -m INDEX    request INDEX asks for BASE_URL/missing instead (repeatable)\n"
            "  -T SECONDS  give up on a request after that long (default 30)\n"
            "A server to try it with: examples/slow_http_server.\n");
}

int main(int argc, char **argv)
{
    long timeout_s = 30;
    long missing[16];
    size_t nmissing = 0;
    int opt;
    while ((opt = getopt(argc, argv, "m:T:h")) != -1) {
        switch (opt) {
        case 'm':
            if (nmissing == sizeof missing / sizeof missing[0]) {
                fprintf(stderr, "fetch: at most %zu -m\n", nmissing);
                return 2;
            }
            missing[nmissing++] = parse_long(optarg, 1, COUNT_MAX, "index");
            break;
        case 'T': timeout_s = parse_long(optarg, 1, 3600, "timeout"); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        usage(stderr);
        return 2;
    }
    const char *base = argv[optind];
    size_t base_len = strlen(base);
    while (base_len > 0 && base[base_len - 1] == '/')
        base_len--; /* "http://host/" + "/item/1" */
    size_t count = 10;
    if (argc - optind == 2)
        count = (size_t)parse_long(argv[optind + 1], 1, COUNT_MAX, "count");
    for (size_t m = 0; m < nmissing; m++) {
        if ((size_t)missing[m] > count) {
            fprintf(stderr, "fetch: -m %ld: there are only %zu requests\n", missing[m], count);
            return 2;
        }
    }

    /* Once, before any thread uses libcurl. */
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        fprintf(stderr, "fetch: curl_global_init: %s\n", curl_easy_strerror(cc));
        return 3;
    }
    int status = 3;
    request *reqs = calloc(count, sizeof *reqs);
    gather_future **futures = calloc(count, sizeof *futures);
    gather_result *results = calloc(count, sizeof *results);
    size_t submitted = 0;
    if (reqs == NULL || futures == NULL || results == NULL) {
        fprintf(stderr, "fetch: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        bool is_missing = false;
        for (size_t m = 0; m < nmissing; m++)
            is_missing |= (size_t)missing[m] == i + 1;
        char path[32];
        if (is_missing)
            snprintf(path, sizeof path, "/missing");
        else
            snprintf(path, sizeof path, "/item/%zu", i + 1);
        size_t size = base_len + strlen(path) + 1;
        reqs[i].url = malloc(size);
        if (reqs[i].url == NULL) {
            fprintf(stderr, "fetch: out of memory\n");
            goto out;
        }
        snprintf(reqs[i].url, size, "%.*s%s", (int)base_len, base, path);
        reqs[i].timeout_s = timeout_s;
    }

    printf("fetch: %zu GETs of %.*s/item/N on the default pool "
           "(%zu threads, more while tasks block)\n",
           count, (int)base_len, base, gather_pool_threads(NULL));
    fflush(stdout);

    /* tasks = [fetch_post(session, i) for i in ...]: each starts at once. */
    double start = now_s();
    for (; submitted < count; submitted++) {
        int rc = gather_submit(NULL, fetch_one, &reqs[submitted], &futures[submitted]);
        if (rc != 0) {
            fprintf(stderr, "fetch: gather_submit: %s\n", strerror(rc));
            goto out;
        }
    }
    /* results = await asyncio.gather(*tasks, return_exceptions=True) */
    int rc = gather_futures(futures, count, results, GATHER_RETURN_ERRORS);
    double took = now_s() - start;
    if (rc != 0) {
        fprintf(stderr, "fetch: gather_futures: %s\n", strerror(rc));
        goto out;
    }

    size_t failed = 0;
    double sum = 0;
    for (size_t i = 0; i < count; i++) {
        const request *req = &reqs[i];
        sum += req->seconds;
        char status_col[24] = "---";
        if (req->status > 0)
            snprintf(status_col, sizeof status_col, "%ld", req->status);
        if (results[i].error == 0) {
            const request *ok = results[i].value; /* == req */
            char line[80];
            first_line(ok, line, sizeof line);
            printf("%5zu  %s  %6zu B  %.3f s  %s\n", i + 1, status_col, ok->body_bytes,
                   ok->seconds, line);
        } else {
            failed++;
            const char *message = results[i].value; /* the error payload */
            int code = results[i].error;
            char name[80] = "";
            if (code < 400) /* an errno value, not an HTTP status */
                snprintf(name, sizeof name, " (%s)", strerror(code));
            printf("%5zu  %s  %6zu B  %.3f s  error %d%s: %s\n", i + 1, status_col,
                   req->body_bytes, req->seconds, code, name,
                   message != NULL ? message : "(no message)");
        }
    }
    printf("fetch: %zu requests in %.3f s: %zu ok, %zu failed "
           "(one after the other: %.3f s, x%.1f)\n",
           count, took, count - failed, failed, sum, took > 0 ? sum / took : 0.0);
    gather_pool_stats stats;
    if (gather_pool_stats_get(NULL, &stats) == 0 && stats.threads_peak > 0)
        printf("fetch: the default pool had at most %llu threads (%llu spares started)\n",
               (unsigned long long)stats.threads_peak,
               (unsigned long long)stats.spares_started);
    status = failed > 0 ? 1 : 0;

out:
    /* Wait for what was submitted before freeing what the tasks use (only
     * after a failed submit or gather can anything still run here). */
    if (submitted > 0 && status == 3) {
        int wrc = gather_futures(futures, submitted, NULL, GATHER_RETURN_ERRORS);
        if (wrc != 0) { /* tasks may still run: leave their memory alone */
            fprintf(stderr, "fetch: gather_futures: %s\n", strerror(wrc));
            return 3;
        }
    }
    for (size_t i = 0; i < submitted; i++)
        gather_future_release(futures[i]);
    if (reqs != NULL)
        for (size_t i = 0; i < count; i++)
            free(reqs[i].url);
    free(reqs);
    free(futures);
    free(results);
    curl_global_cleanup(); /* after every task using libcurl has returned */
    if (fflush(stdout) != 0 && status != 3) {
        perror("fetch: stdout");
        status = 3;
    }
    return status;
}
