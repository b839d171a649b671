/*
 * okprobe: the measurements busybox cannot make, for the okdbench test guest.
 *
 *   okprobe fsync  DEV OFFSET COUNT SIZE   etcd-style WAL check: COUNT sequential writes of SIZE bytes,
 *                                          each followed by fdatasync(); prints latency percentiles + IOPS
 *   okprobe seqwrite DEV OFFSET MIB        sequential 1 MiB O_DIRECT writes then fdatasync(); prints MB/s
 *   okprobe elapsed CMD [ARG...]           runs CMD (stdout discarded), prints its wall time in seconds
 *   okprobe mbr DEV SPLIT_MIB              two MBR partitions: [1 MiB, SPLIT) and [SPLIT, end); rereads the table
 *   okprobe get HOST PORT PATH             HTTP/1.0 GET on an IPv4 address, body to stdout (etcd /metrics, /health)
 *   okprobe etcdput HOST PORT COUNT SIZE [PREFIX]
 *                                          COUNT sequential puts of SIZE-byte values through etcd's JSON gateway
 *                                          (/v3/kv/put, one keep-alive connection); prints latency percentiles + rate;
 *                                          with PREFIX, "PREFIX done=<n> t=<uptime>" on stderr every 5 s (progress)
 *
 * Output is one line of key=value pairs, so the /init script can prefix it with "OKDBENCH probe <name>".
 * Timing uses CLOCK_MONOTONIC; busybox's date has no sub-second resolution.
 * Built statically at guest build time (gcc -static -O2): the initramfs has no libc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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

/* Two primary partitions in a fresh MBR: the raw probes keep the first, etcd's filesystem the second. */
static int probe_mbr(const char *dev, long split_mib)
{
	int fd = open(dev, O_RDWR);
	if (fd < 0)
		return die("open");
	unsigned long long bytes = 0;
	if (ioctl(fd, BLKGETSIZE64, &bytes) != 0)
		return die("blkgetsize64");
	unsigned long long sectors = bytes / 512, first = 2048, split = (unsigned long long)split_mib * 2048;
	if (split <= first || split >= sectors)
		return die("split_outside_disk");
	unsigned char mbr[512];
	memset(mbr, 0, sizeof mbr);
	unsigned long long starts[2] = {first, split}, sizes[2] = {split - first, sectors - split};
	for (int i = 0; i < 2; i++) {
		unsigned char *e = mbr + 446 + 16 * i;
		e[4] = 0x83; /* Linux */
		for (int b = 0; b < 4; b++) {
			e[8 + b] = (unsigned char)(starts[i] >> (8 * b));
			e[12 + b] = (unsigned char)(sizes[i] >> (8 * b));
		}
	}
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	if (pwrite(fd, mbr, sizeof mbr, 0) != (ssize_t)sizeof mbr)
		return die("write");
	if (fsync(fd) != 0)
		return die("fsync");
	if (ioctl(fd, BLKRRPART) != 0)
		return die("blkrrpart");
	close(fd);
	printf("p1_mib=%llu p2_mib=%llu\n", (split - first) / 2048, (sectors - split) / 2048);
	return 0;
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	/* A silent peer must not hold the probe forever: every read and write gives up after 10 s. */
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int probe_get(const char *host, int port, const char *path)
{
	int fd = connect_to(host, port);
	if (fd < 0)
		return die("connect");
	char req[512];
	int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	if (len <= 0 || len >= (int)sizeof req || write_all(fd, req, (size_t)len) != 0)
		return die("request");
	/* Skip the status line and headers (up to the blank line), copy the body. */
	char buf[65536];
	int state = 0; /* how much of "\r\n\r\n" was just seen; 4 = in the body */
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		ssize_t i = 0;
		for (; i < n && state < 4; i++) {
			char want = (state % 2 == 0) ? '\r' : '\n';
			state = buf[i] == want ? state + 1 : (buf[i] == '\r' ? 1 : 0);
		}
		if (state == 4 && i < n)
			fwrite(buf + i, 1, (size_t)(n - i), stdout);
	}
	close(fd);
	return n < 0 ? die("read") : 0;
}

static void b64(const unsigned char *in, size_t len, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = in[i] << 16 | (i + 1 < len ? in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < len ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? t[v & 63] : '=';
	}
	out[o] = 0;
}

/* Read one HTTP/1.1 response (headers + Content-Length body); 0 when the status is 200. */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	char *end = NULL;
	while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
		if (have == cap)
			return -1;
		ssize_t n = read(fd, buf + have, cap - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	long body = 0;
	char *cl = memmem(buf, (size_t)(end - buf), "Content-Length:", 15);
	if (cl)
		body = atol(cl + 15);
	size_t need = (size_t)(end - buf) + 4 + (size_t)body;
	while (have < need) {
		if (need > cap)
			return -1;
		ssize_t n = read(fd, buf + have, need - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -2;
}

static double uptime_s(void)
{
	double up = 0;
	FILE *f = fopen("/proc/uptime", "r");
	if (f) {
		if (fscanf(f, "%lf", &up) != 1)
			up = 0;
		fclose(f);
	}
	return up;
}

static int probe_etcdput(const char *host, int port, long count, long size, const char *progress)
{
	int fd = connect_to(host, port);
	if (fd < 0)
		return die("connect");
	unsigned char *value = malloc((size_t)size);
	char *value64 = malloc((size_t)size * 4 / 3 + 8), *body = malloc((size_t)size * 4 / 3 + 256);
	char *req = malloc((size_t)size * 4 / 3 + 512), resp[8192];
	double *lat = malloc(sizeof(double) * (size_t)count);
	if (!value || !value64 || !body || !req || !lat)
		return die("malloc");
	memset(value, 'v', (size_t)size);
	b64(value, (size_t)size, value64);
	double start = now_s(), shown = start;
	for (long i = 0; i < count; i++) {
		char key[32], key64[64];
		/* A slow host makes the load long: say it still moves, so the host's silence bound holds. */
		if (progress && now_s() - shown >= 5.0) {
			fprintf(stderr, "%s done=%ld t=%.2f\n", progress, i, uptime_s());
			shown = now_s();
		}
		snprintf(key, sizeof key, "okdbench/%08ld", i % 1000); /* a fixed key space, as a busy cluster rewrites */
		b64((unsigned char *)key, strlen(key), key64);
		int blen = sprintf(body, "{\"key\":\"%s\",\"value\":\"%s\"}", key64, value64);
		int rlen = sprintf(req, "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
				   "Content-Length: %d\r\n\r\n%s", host, blen, body);
		double t0 = now_s();
		if (write_all(fd, req, (size_t)rlen) != 0)
			return die("write");
		int r = read_response(fd, resp, sizeof resp);
		if (r != 0)
			return die(r == -2 ? "put_rejected" : "read");
		lat[i] = now_s() - t0;
	}
	double total = now_s() - start;
	close(fd);
	qsort(lat, (size_t)count, sizeof(double), cmp_double);
	printf("put_count=%ld put_bytes=%ld put_p50_ms=%.4f put_p99_ms=%.4f put_max_ms=%.4f put_rate=%.1f\n", count,
	       size, percentile(lat, count, 50) * 1e3, percentile(lat, count, 99) * 1e3, lat[count - 1] * 1e3,
	       count / total);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: okprobe fsync DEV OFFSET COUNT SIZE | seqwrite DEV OFFSET MIB | elapsed CMD [ARG...]"
			" | mbr DEV SPLIT_MIB | get HOST PORT PATH | etcdput HOST PORT COUNT SIZE [PREFIX]\n");
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
	if (strcmp(argv[1], "mbr") == 0 && argc == 4)
		return probe_mbr(argv[2], atol(argv[3]));
	if (strcmp(argv[1], "get") == 0 && argc == 5)
		return probe_get(argv[2], atoi(argv[3]), argv[4]);
	if (strcmp(argv[1], "etcdput") == 0 && (argc == 6 || argc == 7)) {
		long count = atol(argv[4]), size = atol(argv[5]);
		if (count < 1 || size < 1 || size > (1 << 20))
			return usage();
		return probe_etcdput(argv[2], atoi(argv[3]), count, size, argc == 7 ? argv[6] : NULL);
	}
	return usage();
}
