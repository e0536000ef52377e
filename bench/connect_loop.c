/* Session start benchmark client (bench/store.sh): THREADS clients, each in a loop for SECONDS: connect
 * (TCP, TLS, authentication, up to ReadyForQuery), `select 1`, disconnect. Every session's own times are
 * kept, so the distribution is exact (no histogram buckets):
 *   connect  PQconnectdb until it returns (CONNECTION_OK)
 *   start    connect + `select 1` answered: the session start a client sees
 * The password comes from PGPASSWORD (libpq), never from the command line.
 *
 *   connect_loop CONNINFO THREADS SECONDS
 *
 * Prints one line of key=value pairs on stdout: sessions, errors, secs (first start to last end), rate
 * (sessions/s), start_p50/p90/p99/max_ms, connect_p50/p99_ms. The first error is printed on stderr.
 * Exit code 1 when no session succeeded.
 *
 * Build: cc -O2 -o connect_loop connect_loop.c -I$(pg_config --includedir) -lpq -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char* conninfo;
static double deadline;
static atomic_int first_error_taken;

struct worker {
    pthread_t thread;
    double* start_ms;
    double* connect_ms;
    size_t n, cap;
    long errors;
    double last_end;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report_error(const char* what, const char* msg) {
    if (atomic_exchange(&first_error_taken, 1) == 0) fprintf(stderr, "connect_loop: %s: %s\n", what, msg ? msg : "?");
}

static void* run(void* arg) {
    struct worker* w = arg;
    for (;;) {
        const double t0 = now_s();
        if (t0 >= deadline) break;
        PGconn* c = PQconnectdb(conninfo);
        const double t1 = now_s();
        if (PQstatus(c) != CONNECTION_OK) {
            report_error("connect", PQerrorMessage(c));
            PQfinish(c);
            ++w->errors;
            continue;
        }
        PGresult* r = PQexec(c, "select 1");
        const int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        const double t2 = now_s();
        if (!ok) report_error("select 1", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        w->last_end = now_s();
        if (!ok) {
            ++w->errors;
            continue;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->start_ms = realloc(w->start_ms, w->cap * sizeof(double));
            w->connect_ms = realloc(w->connect_ms, w->cap * sizeof(double));
            if (!w->start_ms || !w->connect_ms) {
                fprintf(stderr, "connect_loop: out of memory\n");
                exit(1);
            }
        }
        w->start_ms[w->n] = (t2 - t0) * 1e3;
        w->connect_ms[w->n] = (t1 - t0) * 1e3;
        ++w->n;
    }
    return NULL;
}

static int cmp(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double* v, size_t n, double p) {
    if (n == 0) return 0;
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: connect_loop CONNINFO THREADS SECONDS\n");
        return 2;
    }
    conninfo = argv[1];
    const int threads = atoi(argv[2]);
    const double secs = atof(argv[3]);
    if (threads < 1 || secs <= 0) {
        fprintf(stderr, "connect_loop: THREADS >= 1 and SECONDS > 0\n");
        return 2;
    }
    struct worker* ws = calloc((size_t)threads, sizeof *ws);
    const double t_begin = now_s();
    deadline = t_begin + secs;
    for (int i = 0; i < threads; ++i) pthread_create(&ws[i].thread, NULL, run, &ws[i]);
    size_t total = 0;
    long errors = 0;
    double t_end = t_begin;
    for (int i = 0; i < threads; ++i) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
        errors += ws[i].errors;
        if (ws[i].last_end > t_end) t_end = ws[i].last_end;
    }
    double* start = malloc((total ? total : 1) * sizeof(double));
    double* conn = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < threads; ++i) {
        memcpy(start + k, ws[i].start_ms, ws[i].n * sizeof(double));
        memcpy(conn + k, ws[i].connect_ms, ws[i].n * sizeof(double));
        k += ws[i].n;
    }
    qsort(start, total, sizeof(double), cmp);
    qsort(conn, total, sizeof(double), cmp);
    const double elapsed = t_end - t_begin;
    printf("sessions=%zu errors=%ld secs=%.3f rate=%.1f start_p50_ms=%.3f start_p90_ms=%.3f start_p99_ms=%.3f "
           "start_max_ms=%.3f connect_p50_ms=%.3f connect_p99_ms=%.3f\n",
           total, errors, elapsed, elapsed > 0 ? (double)total / elapsed : 0.0, pct(start, total, 50),
           pct(start, total, 90), pct(start, total, 99), total ? start[total - 1] : 0.0, pct(conn, total, 50),
           pct(conn, total, 99));
    return total > 0 ? 0 : 1;
}
