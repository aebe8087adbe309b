/* SPDX-License-Identifier: MIT */
/*
 * checksum.c - checksums every file under directory trees in parallel, like
 * `find DIR -type f | sort | xargs sha256sum`, one gather task per file.
 *
 *   ./build/examples/checksum [-p THREADS] [DIR|FILE]...
 *
 * The hash comes from a well-kept library: OpenSSL's SHA-256 (EVP API) when
 * CMake found OpenSSL, else zlib's CRC-32. Each task opens and reads its file
 * with plain blocking read() calls: a task that blocks holds only its own
 * pool thread, so with more threads than CPUs (-p) slow disks or network file
 * systems are read in parallel too.
 *
 * Output: "HASH  PATH" lines on stdout in sorted walk order (sha256sum's
 * format, so `sha256sum -c` can check them), whatever order the tasks finish
 * in, because gather_futures() keeps input order. Files that cannot be read
 * (no permission, a dangling symlink, a symlink loop, a file removed during
 * the walk) do not stop the others: with GATHER_RETURN_ERRORS each failure
 * stays in its result slot and is reported on stderr, in order, as
 * "checksum: PATH: REASON". When stderr is a terminal, a progress bar is
 * drawn there by done callbacks (gather_future_on_done) as files finish.
 *
 * Symlinks are hashed as their target (like sha256sum), except symlinks to
 * directories, which are neither followed nor hashed. Sockets, FIFOs and
 * devices met in the walk are skipped.
 *
 * With no DIR it creates a small tree of generated files in a temporary
 * directory (with a dangling symlink, a symlink loop and a file without read
 * permission among them), checksums it, checks that exactly the expected
 * files failed, and removes it.
 *
 * Exit status: 0 when every file was read (with no DIR: when exactly the
 * expected ones failed), 1 when some could not be, 2 on bad usage.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include <gather.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(CHECKSUM_OPENSSL)
#include <openssl/evp.h>
#define HASH_NAME "SHA-256"
#define HASH_HEX 64
#elif defined(CHECKSUM_ZLIB)
#include <zlib.h>
#define HASH_NAME "CRC-32"
#define HASH_HEX 8
#else
#error "build with CHECKSUM_OPENSSL (and OpenSSL) or CHECKSUM_ZLIB (and zlib)"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the files, as the walk finds them ---------------------------------- */

typedef struct entry {
    char *path;
    int walk_error;       /* errno the walk already met (unreadable dir...) */
    uint64_t size;        /* from the walk, for the progress bar */
    uint64_t bytes_read;  /* written by the task */
    char hex[HASH_HEX + 1];
} entry;

typedef struct entry_list {
    entry *items;
    size_t count, capacity;
    int error; /* ENOMEM while collecting */
} entry_list;

/* nftw() takes no user pointer: the list it fills is a file-scope variable. */
static entry_list *walk_into;

static void add_entry(const char *path, int walk_error, uint64_t size)
{
    entry_list *list = walk_into;
    if (list->error != 0)
        return;
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? 2 * list->capacity : 256;
        entry *items = realloc(list->items, cap * sizeof *items);
        if (items == NULL) {
            list->error = ENOMEM;
            return;
        }
        list->items = items;
        list->capacity = cap;
    }
    char *copy = strdup(path);
    if (copy == NULL) {
        list->error = ENOMEM;
        return;
    }
    list->items[list->count++] = (entry){copy, walk_error, size, 0, ""};
}

static int walk_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    struct stat target;
    switch (type) {
    case FTW_F:
        if (S_ISREG(sb->st_mode))
            add_entry(path, 0, (uint64_t)sb->st_size);
        break; /* sockets, FIFOs, devices: skipped */
    case FTW_SL: /* a symlink (FTW_PHYS): hash its target, unless a directory */
        if (stat(path, &target) != 0)
            add_entry(path, 0, 0); /* dangling or a loop: its task reports why */
        else if (S_ISREG(target.st_mode))
            add_entry(path, 0, (uint64_t)target.st_size);
        break;
    case FTW_DNR: /* a directory we may not read */
        add_entry(path, EACCES, 0);
        break;
    case FTW_NS: /* stat() failed */
        add_entry(path, errno ? errno : EIO, 0);
        break;
    default: /* FTW_D, FTW_DP */
        break;
    }
    return walk_into->error != 0; /* stop the walk when out of memory */
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

/* Appends the files under root to list, sorted by path. */
static int walk(const char *root, entry_list *list)
{
    size_t first = list->count;
    walk_into = list;
    if (nftw(root, walk_visit, 64, FTW_PHYS) != 0) {
        if (list->error == 0) {
            int err = errno;
            fprintf(stderr, "checksum: %s: %s\n", root, strerror(err));
            return err;
        }
    }
    if (list->error != 0) {
        fprintf(stderr, "checksum: %s: %s\n", root, strerror(list->error));
        return list->error;
    }
    qsort(list->items + first, list->count - first, sizeof *list->items, compare_entries);
    return 0;
}

/* ---- the task: read one file and hash it -------------------------------- */

static void to_hex(const unsigned char *bytes, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n] = '\0';
}

/* Reads fd to the end into the hash; returns 0 or an errno value. */
static int hash_fd(int fd, entry *e)
{
    enum { CHUNK = 128 * 1024 };
    unsigned char *buf = malloc(CHUNK);
    if (buf == NULL)
        return ENOMEM;
    int rc = 0;
#if defined(CHECKSUM_OPENSSL)
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        rc = ENOMEM;
#else
    uLong crc = crc32(0L, Z_NULL, 0);
#endif
    while (rc == 0) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0) {
            if (errno != EINTR)
                rc = errno;
            continue;
        }
        if (got == 0)
            break;
        e->bytes_read += (uint64_t)got;
#if defined(CHECKSUM_OPENSSL)
        if (EVP_DigestUpdate(ctx, buf, (size_t)got) != 1)
            rc = EIO;
#else
        crc = crc32(crc, buf, (uInt)got);
#endif
    }
#if defined(CHECKSUM_OPENSSL)
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, &md_len) != 1)
        rc = EIO;
    if (rc == 0)
        to_hex(md, md_len, e->hex);
    EVP_MD_CTX_free(ctx);
#else
    if (rc == 0) {
        unsigned char be[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16),
                               (unsigned char)(crc >> 8), (unsigned char)crc};
        to_hex(be, 4, e->hex);
    }
#endif
    free(buf);
    return rc;
}

/* A gather task. On success and on failure alike, *result is the entry: the
 * error payload of a failure is the file it is about. */
static int checksum_task(void *arg, void **result)
{
    entry *e = arg;
    *result = e;
    if (e->walk_error != 0)
        return e->walk_error;
    /* O_NONBLOCK: a symlink may have been swapped for a FIFO since the walk;
     * opening it must not hang. Regular files ignore the flag. */
    int fd = open(e->path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = errno;
    else if (S_ISDIR(sb.st_mode))
        rc = EISDIR;
    else if (!S_ISREG(sb.st_mode))
        rc = EINVAL; /* replaced by something else since the walk */
    else
        rc = hash_fd(fd, e);
    close(fd);
    return rc;
}

/* ---- the progress bar (stderr, only on a terminal) ---------------------- */

typedef struct progress {
    size_t total_files;
    uint64_t total_bytes;
    atomic_size_t done_files;
    atomic_uint_fast64_t done_bytes;
    pthread_mutex_t draw_lock;
    double last_draw;
} progress;

static void draw_bar(progress *p, bool force)
{
    /* One thread draws at a time; the others skip (the next one redraws). */
    if (force)
        pthread_mutex_lock(&p->draw_lock);
    else if (pthread_mutex_trylock(&p->draw_lock) != 0)
        return;
    double t = now_s();
    if (force || t - p->last_draw >= 0.05) {
        p->last_draw = t;
        size_t files = atomic_load(&p->done_files);
        uint64_t bytes = atomic_load(&p->done_bytes);
        double frac = p->total_bytes ? (double)bytes / (double)p->total_bytes
                                     : (p->total_files ? (double)files / (double)p->total_files : 1);
        if (frac > 1)
            frac = 1;
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int fill = (int)(frac * WIDTH + 0.5);
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r[%s] %3.0f%%  %zu/%zu files  %.1f MiB", bar, frac * 100, files,
                p->total_files, (double)bytes / (1 << 20));
        fflush(stderr);
    }
    pthread_mutex_unlock(&p->draw_lock);
}

/* A done callback: runs on the worker that finished the task (or at once on
 * the main thread when the task was already done when it was added). */
static void on_file_done(gather_future *future, void *user_data)
{
    progress *p = user_data;
    const entry *e = gather_future_value(future);
    atomic_fetch_add(&p->done_files, 1);
    if (e != NULL)
        atomic_fetch_add(&p->done_bytes, e->size);
    draw_bar(p, false);
}

/* ---- checksumming a list ------------------------------------------------- */

typedef struct run_summary {
    size_t files, failed;
    uint64_t bytes;
    double seconds;
} run_summary;

/* Checksums every entry on `pool`; prints results in order. failed_out[i]
 * receives each entry's error (0 when hashed). */
static int checksum_all(gather_pool *pool, entry_list *list, int failed_out[],
                        run_summary *summary)
{
    size_t n = list->count;
    gather_future **futures = calloc(n ? n : 1, sizeof *futures);
    gather_result *results = calloc(n ? n : 1, sizeof *results);
    if (futures == NULL || results == NULL) {
        free(futures);
        free(results);
        return ENOMEM;
    }
    progress prog = {.total_files = n, .draw_lock = PTHREAD_MUTEX_INITIALIZER};
    for (size_t i = 0; i < n; i++)
        prog.total_bytes += list->items[i].size;
    bool show = isatty(STDERR_FILENO) && n > 0;

    double start = now_s();
    size_t submitted = 0;
    int rc = 0;
    for (; submitted < n; submitted++) {
        rc = gather_submit(pool, checksum_task, &list->items[submitted], &futures[submitted]);
        if (rc != 0)
            break;
        if (show && gather_future_on_done(futures[submitted], on_file_done, &prog) != 0)
            show = false; /* out of memory: no bar, the checksums go on */
    }

    /* asyncio.gather(..., return_exceptions=True): waits for every task;
     * a failure only lands in its slot. */
    int grc = gather_futures(futures, submitted, results, GATHER_RETURN_ERRORS);
    double seconds = now_s() - start;
    if (rc == 0)
        rc = grc;
    if (show) {
        draw_bar(&prog, true);
        fprintf(stderr, "\r\033[K"); /* clears the bar's line */
    }

    *summary = (run_summary){0};
    summary->seconds = seconds;
    for (size_t i = 0; i < submitted; i++) {
        const entry *e = &list->items[i];
        failed_out[i] = results[i].error;
        summary->files++;
        summary->bytes += e->bytes_read;
        if (results[i].error == 0) {
            printf("%s  %s\n", e->hex, e->path);
        } else {
            /* results[i].value is the entry: the failure's payload. */
            const entry *bad = results[i].value;
            summary->failed++;
            fflush(stdout); /* keep stdout and stderr lines in order */
            fprintf(stderr, "checksum: %s: %s\n", bad->path, strerror(results[i].error));
        }
        gather_future_release(futures[i]);
    }
    fflush(stdout);
    free(futures);
    free(results);
    if (rc != 0)
        fprintf(stderr, "checksum: %s (after %zu of %zu files)\n", strerror(rc), submitted, n);
    return rc;
}

static void print_summary(const run_summary *s, size_t threads)
{
    double mib = (double)s->bytes / (1 << 20);
    fprintf(stderr, "checksum: %s of %zu files, %.1f MiB in %.3f s (%.0f MiB/s, %zu threads)",
            HASH_NAME, s->files, mib, s->seconds, s->seconds > 0 ? mib / s->seconds : 0.0,
            threads);
    if (s->failed)
        fprintf(stderr, "; %zu could not be read", s->failed);
    fprintf(stderr, "\n");
}

/* ---- the built-in input: a generated tree ------------------------------- */

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static int write_file(const char *path, size_t size, uint64_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    unsigned char buf[64 * 1024];
    uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 1;
    int rc = 0;
    while (size > 0 && rc == 0) {
        size_t n = size < sizeof buf ? size : sizeof buf;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = xorshift64(&state);
            memcpy(buf + i, &r, n - i < 8 ? n - i : 8);
        }
        if (write(fd, buf, n) != (ssize_t)n)
            rc = errno ? errno : EIO;
        size -= n;
    }
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    return rc;
}

/* What the generated tree holds, and which files are expected to fail. */
typedef struct demo_file {
    const char *path;
    int expected_error; /* -1: EACCES unless we may read anything (root) */
} demo_file;

static const demo_file demo_unreadable[] = {
    {"tree/links/dangling", ENOENT}, /* -> ../no-such-file */
    {"tree/links/loop", ELOOP},      /* -> loop */
    {"tree/private/secret.txt", -1}, /* mode 000 */
};

static int make_demo_tree(const char *base, size_t *files, uint64_t *bytes)
{
    if (chdir(base) != 0)
        return errno;
    const char *dirs[] = {"tree", "tree/data", "tree/data/small", "tree/docs", "tree/links",
                          "tree/private"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (mkdir(dirs[i], 0755) != 0)
            return errno;
    int rc = 0;
    char path[64];
    *files = 0;
    *bytes = 0;
    for (unsigned i = 0; i < 8 && rc == 0; i++) { /* 64 KiB .. 8 MiB */
        size_t size = ((size_t)64 << 10) << (i % 8);
        snprintf(path, sizeof path, "tree/data/blob-%02u.bin", i);
        rc = write_file(path, size, i);
        *files += 1;
        *bytes += size;
    }
    for (unsigned i = 0; i < 40 && rc == 0; i++) { /* small files, 0 .. 39 KiB */
        size_t size = (size_t)i * 1000 + i;
        snprintf(path, sizeof path, "tree/data/small/file-%02u", i);
        rc = write_file(path, size, 100 + i);
        *files += 1;
        *bytes += size;
    }
    if (rc == 0)
        rc = write_file("tree/docs/empty.txt", 0, 0);
    if (rc == 0)
        rc = write_file("tree/docs/readme.txt", 1234, 7);
    if (rc == 0)
        rc = write_file("tree/private/secret.txt", 4321, 8);
    *files += 3;
    *bytes += 1234 + 4321;
    if (rc == 0 && chmod("tree/private/secret.txt", 0) != 0)
        rc = errno;
    if (rc == 0 && symlink("../docs/readme.txt", "tree/links/readme") != 0)
        rc = errno;
    if (rc == 0 && symlink("../no-such-file", "tree/links/dangling") != 0)
        rc = errno;
    if (rc == 0 && symlink("loop", "tree/links/loop") != 0)
        rc = errno;
    if (rc == 0 && symlink("../data", "tree/links/data-dir") != 0) /* skipped */
        rc = errno;
    *files += 3;
    *bytes += 1234;
    return rc;
}

static int remove_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "checksum: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void free_list(entry_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].path);
    free(list->items);
    list->items = NULL;
    list->count = list->capacity = 0;
}

static int run_demo(gather_pool *pool)
{
    const char *tmp = getenv("TMPDIR");
    char base[4096];
    snprintf(base, sizeof base, "%s/gather-checksum-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(base) == NULL) {
        fprintf(stderr, "checksum: cannot create a temporary directory in %s: %s\n",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return 1;
    }
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t files = 0;
    uint64_t bytes = 0;
    int rc = make_demo_tree(base, &files, &bytes);
    int status = 1;
    if (rc != 0) {
        fprintf(stderr, "checksum: cannot create the demo tree in %s: %s\n", base, strerror(rc));
    } else {
        fprintf(stderr,
                "checksum: no DIR given: checksumming a generated tree of %zu files "
                "(%.1f MiB) in %s\n",
                files, (double)bytes / (1 << 20), base);
        entry_list list = {0};
        int *errors = NULL;
        run_summary summary = {0};
        if (walk("tree", &list) == 0 &&
            (errors = calloc(list.count ? list.count : 1, sizeof *errors)) != NULL &&
            checksum_all(pool, &list, errors, &summary) == 0) {
            print_summary(&summary, gather_pool_threads(pool));
            /* The self-check: exactly the expected files failed, each for
             * the expected reason. */
            status = summary.files == files ? 0 : 1;
            for (size_t i = 0; i < list.count; i++) {
                int want = 0;
                for (size_t k = 0; k < sizeof demo_unreadable / sizeof demo_unreadable[0]; k++) {
                    if (strcmp(list.items[i].path, demo_unreadable[k].path) == 0) {
                        want = demo_unreadable[k].expected_error;
                        if (want == -1) /* root (CAP_DAC_OVERRIDE) reads it anyway */
                            want = access(list.items[i].path, R_OK) == 0 ? 0 : EACCES;
                    }
                }
                if (errors[i] != want) {
                    fprintf(stderr, "checksum: self-check: %s: got \"%s\", expected \"%s\"\n",
                            list.items[i].path, errors[i] ? strerror(errors[i]) : "ok",
                            want ? strerror(want) : "ok");
                    status = 1;
                }
            }
            fprintf(stderr, "checksum: self-check %s: expected failures are the dangling "
                            "symlink, the symlink loop, and the mode-000 file unless run as "
                            "root\n",
                    status == 0 ? "ok" : "FAILED");
        }
        free(errors);
        free_list(&list);
    }
    nftw("tree", remove_visit, 64, FTW_DEPTH | FTW_PHYS);
    if (cwd >= 0) {
        if (fchdir(cwd) != 0)
            fprintf(stderr, "checksum: cannot return to the first directory\n");
        close(cwd);
    }
    if (rmdir(base) != 0)
        fprintf(stderr, "checksum: cannot remove %s: %s\n", base, strerror(errno));
    return status;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: checksum [-p THREADS] [DIR|FILE]...\n"
                "  Prints the %s of every file under each DIR, in sorted order.\n"
                "  -p THREADS  pool threads (default: one per CPU; more help slow disks)\n"
                "  With no DIR, checksums a generated temporary tree.\n",
            HASH_NAME);
}

int main(int argc, char **argv)
{
    size_t threads = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:h")) != -1) {
        if (opt == 'p') {
            char *end = NULL;
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v < 1 || v > 1024) {
                usage(stderr);
                return 2;
            }
            threads = v;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    gather_pool_options opts = {0};
    opts.threads = threads;
    opts.name = "checksum";
    gather_pool *pool = NULL;
    int rc = gather_pool_create(&pool, &opts);
    if (rc != 0) {
        fprintf(stderr, "checksum: gather_pool_create: %s\n", strerror(rc));
        return 1;
    }

    int status = 0;
    if (optind == argc) {
        status = run_demo(pool);
    } else {
        entry_list list = {0};
        for (int i = optind; i < argc; i++)
            if (walk(argv[i], &list) != 0)
                status = 1;
        int *errors = calloc(list.count ? list.count : 1, sizeof *errors);
        run_summary summary = {0};
        if (errors == NULL || checksum_all(pool, &list, errors, &summary) != 0)
            status = 1;
        else {
            if (summary.failed)
                status = 1;
            if (isatty(STDERR_FILENO))
                print_summary(&summary, gather_pool_threads(pool));
        }
        free(errors);
        free_list(&list);
    }
    gather_pool_destroy(pool);
    return status;
}
