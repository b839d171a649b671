/*
 * okprobe: the measurements busybox cannot make, for the okdbench test guest.
 *
 *   okprobe fsync  DEV OFFSET COUNT SIZE   etcd-style WAL check: COUNT sequential writes of SIZE bytes,
 *                                          each followed by fdatasync(); prints latency percentiles + IOPS
 *   okprobe seqwrite DEV OFFSET MIB        sequential 1 MiB O_DIRECT writes then fdatasync(); prints MB/s
 *   okprobe elapsed CMD [ARG...]           runs CMD (stdout discarded), prints its wall time in seconds
 *
 * Output is one line of key=value pairs, so the /init script can prefix it with "OKDBENCH probe <name>".
 * Timing uses CLOCK_MONOTONIC; busybox's date has no sub-second resolution.
 * Built statically at guest build time (gcc -static -O2): the initramfs has no libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	printf("error=%s errno=%d\n", what, errno);
	return 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile on a sorted array: the value below which p% of samples fall. */
static double percentile(const double *sorted, long n, double p)
{
	long rank = (long)((p / 100.0) * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static int probe_fsync(const char *dev, long long offset, long count, long size)
{
	/* No O_DIRECT: etcd writes its WAL through the page cache and relies on fdatasync. */
	int fd = open(dev, O_WRONLY);
	if (fd < 0)
		return die("open");
	if (lseek(fd, offset, SEEK_SET) < 0)
		return die("lseek");
	char *buf = malloc(size);
	double *lat = malloc(sizeof(double) * count);
	if (!buf || !lat)
		return die("malloc");
	memset(buf, 0xa5, size);
	double start = now_s();
	for (long i = 0; i < count; i++) {
		buf[0] = (char)i; /* never the same block twice in a row */
		double t0 = now_s();
		if (write(fd, buf, size) != size)
			return die("write");
		if (fdatasync(fd) != 0)
			return die("fdatasync");
		lat[i] = now_s() - t0;
	}
	double total = now_s() - start;
	close(fd);
	qsort(lat, count, sizeof(double), cmp_double);
	double sum = 0;
	for (long i = 0; i < count; i++)
		sum += lat[i];
	printf("count=%ld bytes=%ld p50_ms=%.4f p99_ms=%.4f max_ms=%.4f mean_ms=%.4f iops=%.1f\n", count, size,
	       percentile(lat, count, 50) * 1e3, percentile(lat, count, 99) * 1e3, lat[count - 1] * 1e3,
	       sum / count * 1e3, count / total);
	return 0;
}

static int probe_seqwrite(const char *dev, long long offset, long mib)
{
	/* O_DIRECT so the guest page cache does not turn this into a memory-bandwidth test. */
	int fd = open(dev, O_WRONLY | O_DIRECT);
	if (fd < 0)
		return die("open");
	if (lseek(fd, offset, SEEK_SET) < 0)
		return die("lseek");
	const long block = 1 << 20;
	void *buf;
	if (posix_memalign(&buf, 4096, block) != 0)
		return die("posix_memalign");
	memset(buf, 0x5a, block);
	double start = now_s();
	for (long i = 0; i < mib; i++) {
		if (write(fd, buf, block) != block)
			return die("write");
	}
	if (fdatasync(fd) != 0)
		return die("fdatasync");
	double total = now_s() - start;
	close(fd);
	printf("mib=%ld seconds=%.4f mbps=%.2f\n", mib, total, (double)mib * block / 1e6 / total);
	return 0;
}

static int probe_elapsed(char **argv)
{
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0)
		return die("fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	if (waitpid(pid, &status, 0) < 0)
		return die("waitpid");
	double dt = now_s() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("error=command_failed status=%d\n", status);
		return 1;
	}
	printf("%.6f\n", dt);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: okprobe fsync DEV OFFSET COUNT SIZE | seqwrite DEV OFFSET MIB | elapsed CMD [ARG...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	if (strcmp(argv[1], "fsync") == 0 && argc == 6) {
		long count = atol(argv[4]), size = atol(argv[5]);
		if (count < 1 || size < 1)
			return usage();
		return probe_fsync(argv[2], atoll(argv[3]), count, size);
	}
	if (strcmp(argv[1], "seqwrite") == 0 && argc == 5) {
		long mib = atol(argv[4]);
		if (mib < 1)
			return usage();
		return probe_seqwrite(argv[2], atoll(argv[3]), mib);
	}
	if (strcmp(argv[1], "elapsed") == 0)
		return probe_elapsed(argv + 2);
	return usage();
}
