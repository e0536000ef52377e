/* Keystroke echo latency over SSH, for bench/ssh.sh.
 *
 *   ssh_echo N SSH-ARGV...   (SSH-ARGV must run: ssh -tt ... HOST 'stty raw -echo; printf READY; exec cat')
 *
 * Runs the ssh client with pipes for stdin/stdout, waits for READY, then N times writes one byte and
 * waits until that byte comes back (the remote pty is raw without echo; cat sends it back), timing
 * each round trip with CLOCK_MONOTONIC. Prints "p50_us p99_us max_us" on stdout. No python, no expect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void* a, const void* b) {
    long long x = *(const long long*)a, y = *(const long long*)b;
    return x < y ? -1 : x > y;
}

/* Reads one byte with a timeout (ms): 1 ok, 0 timeout/EOF. */
static int read_byte(int fd, char* c, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        ssize_t n = read(fd, c, 1);
        if (n < 0 && errno == EINTR) continue;
        return n == 1;
    }
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ssh_echo N ssh ARGS...\n");
        return 2;
    }
    const int n = atoi(argv[1]);
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return 1;
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char* ready = "READY";
    size_t matched = 0;
    char c;
    while (ready[matched]) {
        if (!read_byte(out[0], &c, 30000)) {
            fprintf(stderr, "ssh_echo: no READY from the remote side\n");
            kill(pid, SIGTERM);
            return 1;
        }
        matched = (c == ready[matched]) ? matched + 1 : (c == ready[0]);
    }
    long long* s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; ++i) {
        const char b = (char)('a' + i % 26);
        const long long t0 = now_ns();
        if (write(in[1], &b, 1) != 1) return 1;
        do {
            if (!read_byte(out[0], &c, 10000)) {
                fprintf(stderr, "ssh_echo: byte %d did not come back\n", i);
                kill(pid, SIGTERM);
                return 1;
            }
        } while (c != b);
        s[i] = now_ns() - t0;
        usleep(2000); /* a typist, not a flood */
    }
    close(in[1]);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    qsort(s, (size_t)n, sizeof *s, cmp);
    printf("%.0f %.0f %.0f\n", s[n / 2] / 1e3, s[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3, s[n - 1] / 1e3);
    return 0;
}
