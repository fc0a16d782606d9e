/*
 * tcpstream -- raw TCP loopback stream ceiling (a tiny iperf3 of our own).
 *
 * One connection over 127.0.0.1: a forked sender write()s bs-sized buffers
 * (default 1 MiB, same as nfsbench's sequential request size) for --seconds
 * (or --bytes), the receiver read()s into a bs-sized buffer and discards it.
 * Socket buffer sizes are left at the kernel defaults/autotuning, as the NFS
 * servers do.  The receiver's clock runs from the first byte to EOF.
 *
 * Prints one JSON line:
 *   {"bench":"tcpstream","target":"loopback","op":"stream","bytes":...,
 *    "seconds":...,"GiB_s":...,"iops":...,"p50_us":null,"p99_us":null,...}
 * ("iops" = receiver read() calls per second, for completeness.)
 *
 * Build: gcc -O2 -o tcpstream tcpstream.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rusage_s(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0) {
		fprintf(stderr, "tcpstream: bad size '%s'\n", s);
		exit(2);
	}
	switch (*end) {
	case 'k': case 'K': v *= 1024.0; break;
	case 'm': case 'M': v *= 1024.0 * 1024; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
	default: break;
	}
	return (uint64_t)v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tcpstream [--seconds S | --bytes N] [--bs N] [--target NAME]\n"
		"  --seconds S  sender runs for S seconds (default 5)\n"
		"  --bytes N    sender sends exactly N bytes instead (K/M/G ok)\n"
		"  --bs N       write/read buffer size (default 1M)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 5.0;
	uint64_t bytes_limit = 0;
	size_t bs = 1024 * 1024;
	const char *target = "loopback";

	static struct option lo[] = {
		{"seconds", required_argument, 0, 's'},
		{"bytes", required_argument, 0, 'n'},
		{"bs", required_argument, 0, 'b'},
		{"target", required_argument, 0, 't'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "s:n:b:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 's': seconds = atof(optarg); break;
		case 'n': bytes_limit = parse_size(optarg); break;
		case 'b': bs = (size_t)parse_size(optarg); break;
		case 't': target = optarg; break;
		default: usage();
		}
	}
	if (bs < 1 || bs > 64u * 1024 * 1024 || seconds <= 0)
		usage();

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0) {
		perror("socket");
		return 1;
	}
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	socklen_t al = sizeof(a);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
		perror("bind/listen");
		return 1;
	}

	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		/* sender */
		close(ls);
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("connect");
			_exit(1);
		}
		int one = 1;
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		char *buf = malloc(bs);
		if (!buf)
			_exit(1);
		memset(buf, 0x5a, bs);
		double t_end = now_s() + seconds;
		uint64_t sent = 0;
		for (;;) {
			size_t want = bs;
			if (bytes_limit) {
				if (sent >= bytes_limit)
					break;
				if (bytes_limit - sent < want)
					want = (size_t)(bytes_limit - sent);
			} else if (now_s() >= t_end) {
				break;
			}
			size_t off = 0;
			while (off < want) {
				ssize_t n = write(s, buf + off, want - off);
				if (n < 0) {
					if (errno == EINTR)
						continue;
					perror("write");
					_exit(1);
				}
				off += (size_t)n;
			}
			sent += want;
		}
		close(s);
		_exit(0);
	}

	int s = accept(ls, NULL, NULL);
	if (s < 0) {
		perror("accept");
		kill(pid, SIGKILL);
		return 1;
	}
	close(ls);
	char *buf = malloc(bs);
	if (!buf)
		return 1;
	uint64_t got = 0, reads = 0;
	double t0 = 0, t1 = 0;
	double c0 = rusage_s(RUSAGE_SELF);
	for (;;) {
		ssize_t n = read(s, buf, bs);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("read");
			kill(pid, SIGKILL);
			return 1;
		}
		if (n == 0)
			break;
		if (got == 0)
			t0 = now_s();
		got += (uint64_t)n;
		reads++;
	}
	t1 = now_s();
	double rx_cpu = rusage_s(RUSAGE_SELF) - c0;
	close(s);
	int st = 0;
	waitpid(pid, &st, 0);
	double tx_cpu = rusage_s(RUSAGE_CHILDREN);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "tcpstream: sender failed\n");
		return 1;
	}
	double secs = t1 - t0;
	double gib_s = secs > 0 ? (double)got / secs / (1024.0 * 1024 * 1024) : 0;
	printf("{\"bench\":\"tcpstream\",\"target\":\"%s\",\"op\":\"stream\","
	       "\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"GiB_s\":%.4f,"
	       "\"iops\":%.1f,\"p50_us\":null,\"p99_us\":null,\"bs\":%zu,"
	       "\"rx_cpu_s\":%.3f,\"tx_cpu_s\":%.3f}\n",
	       target, got, secs, gib_s, secs > 0 ? (double)reads / secs : 0, bs,
	       rx_cpu, tx_cpu);
	return 0;
}
