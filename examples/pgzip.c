/* SPDX-License-Identifier: MIT */
/*
 * pgzip.c - a parallel gzip in the spirit of pigz, built on gather and zlib.
 *
 *   pgzip [-1..-9] [-c] [-f] [-k] [-q] [-v] [-p THREADS] [-b KIB] [FILE]...
 *   pgzip < in > out.gz
 *   pgzip                     (stdin a terminal: compresses a built-in input
 *                              in memory and prints the speed)
 *
 * How: the input is cut into independent blocks (128 KiB by default, -b) and
 * each block is compressed by a gather task into a complete gzip member of
 * its own (deflateInit2() with windowBits 15 + 16). A gzip file may hold any
 * number of members one after the other, and gzip -d, zcat, pigz and zlib's
 * gzread() decompress them as one stream; so the output is an ordinary
 * multi-member .gz file (a little larger than gzip's, since no block sees
 * the previous one's data; pigz avoids that by priming each block with the
 * 32 KiB before it).
 *
 * Memory stays bounded whatever the input size: the main thread reads
 * blocks into a ring of 4 x THREADS slots, submitting each, and before it
 * reuses a slot it waits for that slot's future (the oldest one in flight)
 * and writes its member. So reading, compressing and writing overlap, the
 * members come out in input order, and at most 4 x THREADS blocks (and their
 * compressed members) are in memory.
 *
 * gzip's habits: `pgzip FILE` writes FILE.gz (mode and times copied from
 * FILE, name and mtime stored in the header) and removes FILE, unless -k
 * keeps it or -c writes to stdout instead; an existing FILE.gz is not
 * overwritten without -f; files already ending in .gz, directories, and
 * special files are skipped with a warning; compressed data is never written
 * to a terminal without -f. Exit status: 0, 1 on an error, 2 on a warning
 * only.
 *
 * Extras: --bench[=MIB] runs the built-in benchmark (what no argument does
 * on a terminal), --generate=MIB writes the benchmark's generated text to
 * stdout (to compare pgzip with other tools on the same input).
 */
#define _POSIX_C_SOURCE 200809L
#define ZLIB_CONST

#include <gather.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_WARNING = 2 };

typedef struct options {
    int level;       /* 1..9 */
    size_t threads;  /* 0: one per CPU */
    size_t block;    /* bytes */
    bool to_stdout, force, keep, quiet, verbose;
} options;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the task: one block into one gzip member ---------------------------- */

typedef struct block {
    const unsigned char *in; /* the block's data: buf, or the memory input */
    size_t in_len;
    unsigned char *buf;      /* this slot's input buffer (file input) */
    unsigned char *out;      /* this slot's gzip member */
    size_t out_len, out_cap;
    int level;
    gz_header *header;       /* first member: name and mtime; else NULL */
    gather_future *future;   /* the task in flight, NULL when the slot is free */
} block;

static int deflate_block(void *arg, void **result)
{
    (void)result;
    block *b = arg;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int z = deflateInit2(&zs, b->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (z != Z_OK)
        return z == Z_MEM_ERROR ? ENOMEM : EINVAL;
    if (b->header != NULL)
        deflateSetHeader(&zs, b->header);
    /* deflateBound() (with the header set) is enough for one Z_FINISH call. */
    size_t need = deflateBound(&zs, (uLong)b->in_len) + 64;
    if (need > b->out_cap) {
        unsigned char *out = realloc(b->out, need);
        if (out == NULL) {
            deflateEnd(&zs);
            return ENOMEM;
        }
        b->out = out;
        b->out_cap = need;
    }
    zs.next_in = b->in;
    zs.avail_in = (uInt)b->in_len;
    zs.next_out = b->out;
    zs.avail_out = (uInt)b->out_cap;
    z = deflate(&zs, Z_FINISH);
    b->out_len = b->out_cap - zs.avail_out;
    deflateEnd(&zs);
    return z == Z_STREAM_END ? 0 : EIO;
}

/* ---- where blocks come from and where members go ----------------------- */

typedef struct source {
    int fd;                   /* -1: memory */
    const unsigned char *mem; /* memory input */
    size_t mem_len, mem_pos;
} source;

/* Fills b with the next block (in_len 0 at the end); 0 or an errno value. */
static int source_read(source *src, block *b, size_t block_size)
{
    if (src->fd < 0) {
        size_t left = src->mem_len - src->mem_pos;
        b->in = src->mem + src->mem_pos;
        b->in_len = left < block_size ? left : block_size;
        src->mem_pos += b->in_len;
        return 0;
    }
    if (b->buf == NULL && (b->buf = malloc(block_size)) == NULL)
        return ENOMEM;
    size_t got = 0;
    while (got < block_size) { /* pipes give short reads: fill the block */
        ssize_t n = read(src->fd, b->buf + got, block_size - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    b->in = b->buf;
    b->in_len = got;
    return 0;
}

typedef struct sink {
    int fd;             /* -1: memory */
    unsigned char *mem; /* memory output (the benchmark) */
    size_t mem_len, mem_cap;
    uint64_t bytes;
    size_t members;
} sink;

static int sink_write(sink *dst, const unsigned char *data, size_t len)
{
    dst->bytes += len;
    dst->members++;
    if (dst->fd < 0) {
        if (dst->mem_len + len > dst->mem_cap) {
            size_t cap = dst->mem_cap ? dst->mem_cap : (size_t)1 << 20;
            while (cap < dst->mem_len + len)
                cap *= 2;
            unsigned char *mem = realloc(dst->mem, cap);
            if (mem == NULL)
                return ENOMEM;
            dst->mem = mem;
            dst->mem_cap = cap;
        }
        memcpy(dst->mem + dst->mem_len, data, len);
        dst->mem_len += len;
        return 0;
    }
    while (len > 0) {
        ssize_t n = write(dst->fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- the pipeline ---------------------------------------------------------- */

/* Waits for the slot's task and writes its member (unless an error came
 * before: then it only waits, so that the slot's buffers may be freed). */
static int retire(block *b, sink *dst, int rc)
{
    int task_rc = gather_future_wait(b->future, NULL);
    gather_future_release(b->future);
    b->future = NULL;
    if (rc != 0)
        return rc;
    if (task_rc != 0)
        return task_rc;
    return sink_write(dst, b->out, b->out_len);
}

/* Compresses src into dst as gzip members, in order. in_bytes: bytes read. */
static int compress_stream(gather_pool *pool, const options *o, source *src, sink *dst,
                           gz_header *header, uint64_t *in_bytes)
{
    size_t window = 4 * gather_pool_threads(pool);
    block *ring = calloc(window, sizeof *ring);
    if (ring == NULL)
        return ENOMEM;
    uint64_t submitted = 0, retired = 0;
    int rc = 0;
    *in_bytes = 0;
    for (;;) {
        block *b = &ring[submitted % window];
        if (b->future != NULL) { /* the oldest block in flight: write it */
            rc = retire(b, dst, rc);
            retired++;
            if (rc != 0)
                break;
        }
        rc = source_read(src, b, o->block);
        if (rc != 0)
            break;
        /* An empty input still gets one (empty) member: a valid .gz file. */
        if (b->in_len == 0 && submitted > 0)
            break;
        *in_bytes += b->in_len;
        b->level = o->level;
        b->header = submitted == 0 ? header : NULL;
        rc = gather_submit(pool, deflate_block, b, &b->future);
        if (rc != 0)
            break;
        submitted++;
        if (b->in_len < o->block)
            break; /* a short block: the end of the input */
    }
    /* Writes the blocks still in flight in order (or, after an error, only
     * waits for them). */
    for (; retired < submitted; retired++)
        rc = retire(&ring[retired % window], dst, rc);
    for (size_t i = 0; i < window; i++) {
        free(ring[i].buf);
        free(ring[i].out);
    }
    free(ring);
    return rc;
}

/* ---- files, gzip-style -------------------------------------------------- */

static const char *program = "pgzip";

/* The output file being written, removed if we are killed by a signal. */
static char *volatile partial_output;

static void on_fatal_signal(int sig)
{
    char *path = partial_output;
    if (path != NULL)
        unlink(path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signal_handlers(void)
{
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
}

static bool has_gz_suffix(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

static void report_ratio(const options *o, const char *name, uint64_t in, uint64_t out,
                         const char *what)
{
    if (!o->verbose)
        return;
    double saved = in ? 100.0 * (1.0 - (double)out / (double)in) : 0.0;
    fprintf(stderr, "%s:\t%5.1f%%%s\n", name, saved, what);
}

/* Compresses one named file; returns EXIT_OK, EXIT_ERROR or EXIT_WARNING. */
static int compress_file(gather_pool *pool, const options *o, const char *path)
{
    if (has_gz_suffix(path) && !o->to_stdout) {
        if (!o->quiet)
            fprintf(stderr, "%s: %s already has .gz suffix -- unchanged\n", program, path);
        return EXIT_WARNING;
    }
    /* Without -f, symlinks are not followed (gzip's O_NOFOLLOW habit);
     * O_NONBLOCK so that opening a FIFO cannot hang before we see it. */
    int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
    if (!o->force && !o->to_stdout)
        flags |= O_NOFOLLOW;
    int in = open(path, flags);
    if (in < 0) {
        fprintf(stderr, "%s: %s: %s\n", program, path, strerror(errno));
        return EXIT_ERROR;
    }
    struct stat st;
    if (fstat(in, &st) != 0) {
        fprintf(stderr, "%s: %s: %s\n", program, path, strerror(errno));
        close(in);
        return EXIT_ERROR;
    }
    if (S_ISDIR(st.st_mode) || (!S_ISREG(st.st_mode) && !o->to_stdout)) {
        if (!o->quiet)
            fprintf(stderr, "%s: %s is %s -- ignored\n", program, path,
                    S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        close(in);
        return EXIT_WARNING;
    }
    int fl = fcntl(in, F_GETFL);
    if (fl >= 0)
        fcntl(in, F_SETFL, fl & ~O_NONBLOCK);

    /* The first member's header: the file's base name and mtime, like gzip. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    char *out_path = malloc(strlen(path) + 4);
    if (name == NULL || out_path == NULL) {
        fprintf(stderr, "%s: %s: %s\n", program, path, strerror(ENOMEM));
        free(name);
        free(out_path);
        close(in);
        return EXIT_ERROR;
    }
    gz_header header;
    memset(&header, 0, sizeof header);
    header.name = (Bytef *)name;
    header.time = (uLong)st.st_mtime;
    header.os = 3; /* Unix */

    source src = {in, NULL, 0, 0};
    sink dst = {STDOUT_FILENO, NULL, 0, 0, 0, 0};
    uint64_t in_bytes = 0;
    int status = EXIT_OK;
    if (o->to_stdout) {
        int rc = compress_stream(pool, o, &src, &dst, &header, &in_bytes);
        if (rc != 0) {
            fprintf(stderr, "%s: %s: %s\n", program, path, strerror(rc));
            status = EXIT_ERROR;
        } else {
            report_ratio(o, path, in_bytes, dst.bytes, "");
        }
        goto done;
    }

    sprintf(out_path, "%s.gz", path);
    int oflags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | (o->force ? O_TRUNC : O_EXCL);
    int out = open(out_path, oflags, 0600);
    if (out < 0) {
        if (errno == EEXIST) {
            fprintf(stderr, "%s: %s already exists; not overwritten (-f overwrites)\n", program,
                    out_path);
            status = EXIT_WARNING;
        } else {
            fprintf(stderr, "%s: %s: %s\n", program, out_path, strerror(errno));
            status = EXIT_ERROR;
        }
        goto done;
    }
    partial_output = out_path;
    dst.fd = out;
    int rc = compress_stream(pool, o, &src, &dst, &header, &in_bytes);
    const char *failed_on = path;
    if (rc == 0) {
        failed_on = out_path;
        /* Mode, owner (when allowed) and times of the input, like gzip. */
        if (fchown(out, st.st_uid, st.st_gid) != 0) {
            /* not the owner: keep ours, and drop set-id bits below */
            st.st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
        }
        if (fchmod(out, st.st_mode & 07777) != 0)
            rc = errno;
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        if (rc == 0 && futimens(out, times) != 0)
            rc = errno;
    }
    if (close(out) != 0 && rc == 0) {
        rc = errno;
        failed_on = out_path;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", program, failed_on, strerror(rc));
        unlink(out_path);
        partial_output = NULL;
        status = EXIT_ERROR;
        goto done;
    }
    partial_output = NULL;
    if (!o->keep && unlink(path) != 0) {
        fprintf(stderr, "%s: cannot remove %s: %s\n", program, path, strerror(errno));
        status = EXIT_WARNING;
    }
    if (o->verbose)
        fprintf(stderr, "%s:\t%5.1f%% -- %s %s\n", path,
                in_bytes ? 100.0 * (1.0 - (double)dst.bytes / (double)in_bytes) : 0.0,
                o->keep ? "created" : "replaced with", out_path);
done:
    close(in);
    free(name);
    free(out_path);
    return status;
}

/* stdin to stdout. */
static int compress_filter(gather_pool *pool, const options *o)
{
    source src = {STDIN_FILENO, NULL, 0, 0};
    sink dst = {STDOUT_FILENO, NULL, 0, 0, 0, 0};
    uint64_t in_bytes = 0;
    int rc = compress_stream(pool, o, &src, &dst, NULL, &in_bytes);
    if (rc != 0) {
        fprintf(stderr, "%s: stdin: %s\n", program, strerror(rc));
        return EXIT_ERROR;
    }
    report_ratio(o, "stdin", in_bytes, dst.bytes, "");
    return EXIT_OK;
}

/* ---- the built-in input: generated text ----------------------------------- */

enum { GEN_CHUNK = 1 << 20 };

typedef struct gen_chunk {
    unsigned char *dst;
    size_t len;
    uint64_t index; /* the seed: the text depends only on the offset */
} gen_chunk;

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* A gather task: fills one chunk with lines of random words and numbers,
 * text that compresses to about a third, like prose or logs. */
static int generate_chunk(void *arg, void **result)
{
    (void)result;
    static const char *const words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was",
        "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from",
        "at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
        "one", "all", "we", "can", "her", "has", "there", "been", "if", "more",
        "when", "will", "would", "who", "so", "no", "future", "task", "pool",
        "thread", "worker", "queue", "steal", "gather", "result", "error", "cancel",
        "block", "stream", "member", "deflate", "window", "buffer", "compress",
        "parallel", "order", "input", "output", "memory", "library", "function",
        "callback", "request", "response", "server", "client", "network", "packet",
        "timeout", "latency", "throughput", "benchmark", "kernel", "process",
        "signal", "socket", "file", "directory", "checksum", "archive", "record",
        "value", "index", "table", "column", "row", "query", "update", "delete",
        "insert", "select", "commit", "rollback", "lock", "mutex", "atomic",
        "barrier", "fence", "cache", "line", "page", "frame", "stack", "heap"};
    enum { NWORDS = sizeof words / sizeof words[0] };
    gen_chunk *c = arg;
    uint64_t state = (c->index + 1) * 0x9e3779b97f4a7c15ULL;
    size_t pos = 0;
    char tmp[32];
    while (pos < c->len) {
        uint64_t r = xorshift64(&state);
        int nwords = 6 + (int)(r % 10);
        for (int w = 0; w < nwords && pos < c->len; w++) {
            r = xorshift64(&state);
            const char *word;
            size_t len;
            if (r % 11 == 0) { /* a number now and then */
                len = (size_t)snprintf(tmp, sizeof tmp, "%u", (unsigned)(r >> 40) % 100000);
                word = tmp;
            } else {
                word = words[(r >> 8) % NWORDS];
                len = strlen(word);
            }
            for (size_t k = 0; k < len && pos < c->len; k++)
                c->dst[pos++] = (unsigned char)word[k];
            if (pos < c->len)
                c->dst[pos++] = w + 1 < nwords ? ' ' : '.';
        }
        if (pos < c->len)
            c->dst[pos++] = '\n';
    }
    return 0;
}

/* Generates `len` bytes of text at dst, 1 MiB per task (gather_map). */
static int generate_text(gather_pool *pool, unsigned char *dst, size_t len, uint64_t first_chunk)
{
    size_t n = (len + GEN_CHUNK - 1) / GEN_CHUNK;
    gen_chunk *chunks = calloc(n ? n : 1, sizeof *chunks);
    void **args = calloc(n ? n : 1, sizeof *args);
    int rc = ENOMEM;
    if (chunks != NULL && args != NULL) {
        for (size_t i = 0; i < n; i++) {
            size_t off = i * (size_t)GEN_CHUNK;
            chunks[i] = (gen_chunk){dst + off, len - off < GEN_CHUNK ? len - off : GEN_CHUNK,
                                    first_chunk + i};
            args[i] = &chunks[i];
        }
        /* RETURN_ERRORS: returns only when every chunk is written. */
        rc = gather_map(pool, generate_chunk, args, n, NULL, GATHER_RETURN_ERRORS);
    }
    free(chunks);
    free(args);
    return rc;
}

/* --generate=MIB: the benchmark's input on stdout, 16 MiB at a time. */
static int write_generated(gather_pool *pool, size_t mib)
{
    enum { STEP = 16 };
    unsigned char *buf = malloc((size_t)STEP * GEN_CHUNK);
    if (buf == NULL) {
        fprintf(stderr, "%s: %s\n", program, strerror(ENOMEM));
        return EXIT_ERROR;
    }
    sink dst = {STDOUT_FILENO, NULL, 0, 0, 0, 0};
    int rc = 0;
    for (size_t done = 0; done < mib && rc == 0; done += STEP) {
        size_t n = mib - done < STEP ? mib - done : STEP;
        rc = generate_text(pool, buf, n * GEN_CHUNK, done);
        if (rc == 0)
            rc = sink_write(&dst, buf, n * GEN_CHUNK);
    }
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "%s: stdout: %s\n", program, strerror(rc));
        return EXIT_ERROR;
    }
    return EXIT_OK;
}

/* Inflates a multi-member gzip stream and compares it with `want`. */
static int verify_gzip(const unsigned char *gz, size_t gz_len, const unsigned char *want,
                       size_t want_len, size_t *members)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return 0;
    static unsigned char buf[256 * 1024];
    size_t pos = 0;
    int ok = 1;
    *members = 0;
    zs.next_in = gz;
    zs.avail_in = (uInt)gz_len;
    while (ok) {
        zs.next_out = buf;
        zs.avail_out = sizeof buf;
        int z = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof buf - zs.avail_out;
        if (pos + got > want_len || memcmp(want + pos, buf, got) != 0)
            ok = 0;
        pos += got;
        if (z == Z_STREAM_END) {
            ++*members;
            if (zs.avail_in == 0)
                break;
            inflateReset(&zs); /* the next member */
        } else if (z != Z_OK) {
            ok = 0;
        }
    }
    inflateEnd(&zs);
    return ok && pos == want_len;
}

/* No input file on a terminal, or --bench: compress generated text in
 * memory at 1 and at THREADS threads, print the speed, check the output. */
static int run_bench(const options *o, size_t mib)
{
    size_t len = mib << 20;
    printf("%s: compressing %zu MiB of generated text in memory (level %d, %zu KiB blocks)\n",
           program, mib, o->level, o->block >> 10);
    printf("  (pgzip FILE writes FILE.gz; pgzip < in > out.gz; pgzip -h for more)\n");

    gather_pool_options popts = {0};
    popts.threads = o->threads;
    popts.name = "pgzip";
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &popts);
    if (rc != 0) {
        fprintf(stderr, "%s: gather_pool_create: %s\n", program, strerror(rc));
        return EXIT_ERROR;
    }
    size_t threads = gather_pool_threads(pool);
    unsigned char *text = malloc(len ? len : 1);
    if (text == NULL) {
        fprintf(stderr, "%s: %s\n", program, strerror(ENOMEM));
        gather_pool_destroy(pool);
        return EXIT_ERROR;
    }
    double start = now_s();
    rc = generate_text(pool, text, len, 0);
    gather_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "%s: generating: %s\n", program, strerror(rc));
        free(text);
        return EXIT_ERROR;
    }
    printf("  generated in %.3f s with %zu threads\n", now_s() - start, threads);

    size_t runs[2] = {1, threads};
    size_t nruns = threads > 1 ? 2 : 1;
    double first_speed = 0;
    sink dst = {-1, NULL, 0, 0, 0, 0};
    int status = EXIT_OK;
    for (size_t r = 0; r < nruns && status == EXIT_OK; r++) {
        popts.threads = runs[r];
        rc = gather_pool_create(&pool, &popts);
        if (rc != 0) {
            fprintf(stderr, "%s: gather_pool_create: %s\n", program, strerror(rc));
            status = EXIT_ERROR;
            break;
        }
        source src = {-1, text, len, 0};
        dst.mem_len = 0;
        dst.bytes = 0;
        dst.members = 0;
        uint64_t in_bytes = 0;
        start = now_s();
        rc = compress_stream(pool, o, &src, &dst, NULL, &in_bytes);
        double took = now_s() - start;
        gather_pool_destroy(pool);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", program, strerror(rc));
            status = EXIT_ERROR;
            break;
        }
        double speed = (double)in_bytes / 1e6 / took;
        if (r == 0)
            first_speed = speed;
        printf("  %zu thread%s %.1f MB -> %.1f MB (%.1f%%) in %.3f s = %.1f MB/s", runs[r],
               runs[r] == 1 ? ": " : "s:", (double)in_bytes / 1e6, (double)dst.bytes / 1e6,
               in_bytes ? 100.0 * (double)dst.bytes / (double)in_bytes : 0.0, took, speed);
        if (r > 0)
            printf("  (x%.2f)", speed / first_speed);
        printf("\n");
    }
    if (status == EXIT_OK) {
        size_t members = 0;
        if (verify_gzip(dst.mem, dst.mem_len, text, len, &members)) {
            printf("  round trip ok: %zu gzip members inflate back to the input\n", members);
        } else {
            fprintf(stderr, "%s: round trip FAILED\n", program);
            status = EXIT_ERROR;
        }
    }
    free(dst.mem);
    free(text);
    return status;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: %s [-1..-9] [-c] [-f] [-k] [-q] [-v] [-p THREADS] [-b KIB] [FILE]...\n"
            "Compresses each FILE into FILE.gz in parallel (independent blocks, each a gzip\n"
            "member); with no FILE or with -, stdin to stdout.\n"
            "  -1 .. -9      compression level (default 6)\n"
            "  -c, --stdout  write to stdout, keep the input files\n"
            "  -f, --force   overwrite FILE.gz, follow symlinks, write to a terminal\n"
            "  -k, --keep    keep the input files\n"
            "  -p, --processes THREADS  compressing threads (default: one per CPU)\n"
            "  -b, --blocksize KIB      block size in KiB (default 128, at least 1)\n"
            "  -q, --quiet   no warnings\n"
            "  -v, --verbose report the compression of each file\n"
            "  --bench[=MIB] compress MIB (default 64) of generated text in memory and\n"
            "                print the speed (what no argument on a terminal does)\n"
            "  --generate=MIB  write that generated text to stdout\n",
            program);
}

static int parse_size(const char *text, size_t min, size_t max, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return EINVAL;
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    options o = {6, 0, (size_t)128 << 10, false, false, false, false, false};
    size_t bench_mib = 0, generate_mib = 0;
    enum { OPT_BENCH = 256, OPT_GENERATE };
    static const struct option long_opts[] = {
        {"stdout", no_argument, NULL, 'c'},
        {"force", no_argument, NULL, 'f'},
        {"keep", no_argument, NULL, 'k'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"processes", required_argument, NULL, 'p'},
        {"blocksize", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {"bench", optional_argument, NULL, OPT_BENCH},
        {"generate", required_argument, NULL, OPT_GENERATE},
        {NULL, 0, NULL, 0}};
    int opt;
    size_t v = 0;
    while ((opt = getopt_long(argc, argv, "123456789cfkqvp:b:h", long_opts, NULL)) != -1) {
        switch (opt) {
        case '1': case '2': case '3': case '4': case '5':
        case '6': case '7': case '8': case '9':
            o.level = opt - '0';
            break;
        case 'c': o.to_stdout = true; break;
        case 'f': o.force = true; break;
        case 'k': o.keep = true; break;
        case 'q': o.quiet = true; break;
        case 'v': o.verbose = true; break;
        case 'p':
            if (parse_size(optarg, 1, 1024, &v) != 0) {
                fprintf(stderr, "%s: -p wants 1..1024 threads\n", program);
                return EXIT_ERROR;
            }
            o.threads = v;
            break;
        case 'b':
            if (parse_size(optarg, 1, 256 * 1024, &v) != 0) { /* up to 256 MiB */
                fprintf(stderr, "%s: -b wants a block size in KiB, 1..262144\n", program);
                return EXIT_ERROR;
            }
            o.block = v << 10;
            break;
        case OPT_BENCH:
            bench_mib = 64;
            if (optarg && parse_size(optarg, 1, 1024, &bench_mib) != 0) {
                fprintf(stderr, "%s: --bench wants 1..1024 MiB\n", program);
                return EXIT_ERROR;
            }
            break;
        case OPT_GENERATE:
            if (parse_size(optarg, 1, (size_t)1 << 30, &generate_mib) != 0) {
                fprintf(stderr, "%s: --generate wants a size in MiB\n", program);
                return EXIT_ERROR;
            }
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_ERROR;
        }
    }
    bool no_files = optind == argc;
    if (bench_mib == 0 && generate_mib == 0 && no_files && isatty(STDIN_FILENO))
        bench_mib = 64; /* nothing to compress: show what we can do */
    if (bench_mib != 0)
        return run_bench(&o, bench_mib);

    bool writes_stdout = generate_mib != 0 || no_files || o.to_stdout;
    for (int i = optind; i < argc; i++)
        if (strcmp(argv[i], "-") == 0)
            writes_stdout = true;
    if (writes_stdout && !o.force && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "%s: %s not written to a terminal. Use -f to force.\n", program,
                generate_mib ? "generated text" : "compressed data");
        return EXIT_ERROR;
    }

    gather_pool_options popts = {0};
    popts.threads = o.threads;
    popts.name = "pgzip";
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &popts);
    if (rc != 0) {
        fprintf(stderr, "%s: gather_pool_create: %s\n", program, strerror(rc));
        return EXIT_ERROR;
    }
    install_signal_handlers();

    int status = EXIT_OK;
    if (generate_mib != 0) {
        status = write_generated(pool, generate_mib);
    } else if (no_files) {
        status = compress_filter(pool, &o);
    } else {
        for (int i = optind; i < argc; i++) {
            int s = strcmp(argv[i], "-") == 0 ? compress_filter(pool, &o)
                                              : compress_file(pool, &o, argv[i]);
            if (s == EXIT_ERROR || (s == EXIT_WARNING && status == EXIT_OK))
                status = s;
        }
    }
    gather_pool_destroy(pool);
    return status;
}
