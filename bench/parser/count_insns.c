/* Exact user-space instruction counts without a PMU (perf stat does not work on many VMs) and without
 * valgrind (whose decoder rejects the PCMPESTRI range mode used by picohttpparser and luath's SSE4.2 path):
 * runs a program under ptrace and single-steps it between int3 markers.
 *   count_insns PROGRAM ARGS...
 * The program executes an int3 to open a region and another to close it (any number of regions); one line
 * with the region's instruction count is printed to stderr per region. Slow (one context switch per
 * instruction): keep regions to a few million instructions. Linux x86-64 only. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_int3_stop(pid_t pid, int st) {
    siginfo_t si;
    if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) return 0;
    if (ptrace(PTRACE_GETSIGINFO, pid, 0, &si) != 0) return 0;
    return si.si_code == SI_KERNEL; /* int3; a single-step trap has si_code TRAP_TRACE */
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM ARGS...\n", argv[0]);
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execvp(argv[1], argv + 1);
        perror("execvp");
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0); /* stop at exec */
    for (;;) {
        /* Run freely to the next opening int3 (forward other signals). */
        int sig = 0;
        for (;;) {
            if (ptrace(PTRACE_CONT, pid, 0, (void*)(long)sig) != 0) return perror("cont"), 1;
            waitpid(pid, &st, 0);
            if (WIFEXITED(st)) return WEXITSTATUS(st);
            if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
            if (is_int3_stop(pid, st)) break;
            sig = WSTOPSIG(st) == SIGTRAP ? 0 : WSTOPSIG(st);
        }
        /* Single-step to the closing int3. */
        unsigned long long n = 0;
        for (;;) {
            if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) != 0) return perror("step"), 1;
            waitpid(pid, &st, 0);
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                fprintf(stderr, "count_insns: program ended inside a region\n");
                return 1;
            }
            if (is_int3_stop(pid, st)) break;
            ++n;
        }
        fprintf(stderr, "region %llu\n", n);
    }
}
