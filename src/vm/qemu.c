/* SPDX-License-Identifier: MIT */
/*
 * Boot a disk image in QEMU and watch its serial console (see qemu.h and
 * docs/boot.md).
 */
#define _GNU_SOURCE /* ppoll, pipe2, strchrnul */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vm/qemu.h"
#include "core/spawn.h"
#include "core/util.h"

#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"
#define OVMF_DEFAULT_DIR    "/usr/share/OVMF"
/* A console line longer than this is cut into several. */
#define CONSOLE_LINE_MAX 4096
/* QEMU's own messages kept for the report. */
#define STDERR_MAX (64 * 1024)
/* After a kernel panic line, keep reading this long to catch the trace. */
#define PANIC_GRACE_MS 2000
/* A console line that has not grown for this long is matched as a whole line. */
#define CONSOLE_QUIET_MS 300
/* Between SIGTERM and SIGKILL when stopping QEMU. */
#define STOP_GRACE_MS 5000

/* --- the command line ------------------------------------------------------- */

struct strv {
	char **v;
	size_t n, alloc;
};

static void strv_push(struct strv *s, char *str)
{
	GROW(s->v, s->alloc, s->n + 2);
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

static void strv_pushf(struct strv *s, const char *fmt, ...) _printf_(2, 3);
static void strv_pushf(struct strv *s, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	strv_push(s, strbuf_detach(&sb));
}

static void strv_pushl(struct strv *s, const char *a, const char *b)
{
	strv_push(s, xstrdup(a));
	if (b)
		strv_push(s, xstrdup(b));
}

/*
 * QEMU splits -drive and -netdev values at commas; a comma in a path is
 * written twice.
 */
static char *qemu_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	for (; *s; s++) {
		strbuf_addch(&sb, *s);
		if (*s == ',')
			strbuf_addch(&sb, ',');
	}
	return strbuf_detach(&sb);
}

char **qemu_argv_build(const struct qemu_opts *o)
{
	struct strv s = {0};
	struct strbuf net = STRBUF_INIT;
	_cleanup_free_ char *disk = qemu_escape(o->disk);
	size_t i;

	strv_pushl(&s, o->qemu ? o->qemu : QEMU_DEFAULT_BINARY, NULL);
	strv_pushl(&s, "-machine", "q35");
	strv_pushl(&s, "-accel", o->accel == QEMU_ACCEL_KVM ? "kvm" : "tcg");
	/* TCG's "max" has every feature it can emulate; KVM passes the host's through. */
	strv_pushl(&s, "-cpu", o->accel == QEMU_ACCEL_KVM ? "host" : "max");
	strv_pushl(&s, "-m", NULL);
	strv_pushf(&s, "%llu", (unsigned long long)(o->memory_mib ? o->memory_mib : 1024));
	strv_pushl(&s, "-smp", NULL);
	strv_pushf(&s, "%u", o->cpus ? o->cpus : 2);
	strv_pushl(&s, "-nodefaults", NULL);
	strv_pushl(&s, "-display", "none");
	strv_pushl(&s, "-no-reboot", NULL);
	strv_pushl(&s, "-monitor", "none");
	strv_pushl(&s, "-serial", "stdio");
	if (o->firmware == QEMU_FW_UEFI) {
		_cleanup_free_ char *code = qemu_escape(o->ovmf_code ? o->ovmf_code : "");
		_cleanup_free_ char *vars = qemu_escape(o->ovmf_vars ? o->ovmf_vars : "");

		strv_pushl(&s, "-drive", NULL);
		strv_pushf(&s, "if=pflash,format=raw,unit=0,readonly=on,file=%s", code);
		strv_pushl(&s, "-drive", NULL);
		strv_pushf(&s, "if=pflash,format=raw,unit=1,file=%s", vars);
	}
	/*
	 * The disk is the one boot device (bootindex), and the NIC has no
	 * option ROM: a disk that does not boot fails in seconds instead of
	 * after minutes of PXE and HTTP boot attempts.
	 */
	strv_pushl(&s, "-drive", NULL);
	strv_pushf(&s, "file=%s,if=none,id=disk0,format=%s", disk,
		   o->disk_format ? o->disk_format : "raw");
	strv_pushl(&s, "-device", "virtio-blk-pci,drive=disk0,bootindex=0");
	if (o->seed) {
		_cleanup_free_ char *seed = qemu_escape(o->seed);

		strv_pushl(&s, "-drive", NULL);
		strv_pushf(&s, "file=%s,if=none,id=seed0,format=raw,readonly=on", seed);
		strv_pushl(&s, "-device", "virtio-blk-pci,drive=seed0");
	}
	if (o->snapshot)
		strv_pushl(&s, "-snapshot", NULL);
	strbuf_addstr(&net, "user,id=n0");
	for (i = 0; i < o->nforwards; i++)
		strbuf_addf(&net, ",hostfwd=%s:127.0.0.1:%u-:%u",
			    o->forwards[i].udp ? "udp" : "tcp", o->forwards[i].host_port,
			    o->forwards[i].guest_port);
	strv_pushl(&s, "-netdev", NULL);
	strv_push(&s, strbuf_detach(&net));
	strv_pushl(&s, "-device", "virtio-net-pci,netdev=n0,romfile=");
	/*
	 * Strings for the guest, under opt/ (the name space QEMU leaves to
	 * users): Linux shows them in /sys/firmware/qemu_fw_cfg/by_name.
	 */
	for (i = 0; i < o->nfw_cfg; i++) {
		const char *eq = strchr(o->fw_cfg[i], '=');
		_cleanup_free_ char *val = qemu_escape(eq ? eq + 1 : "");

		strv_pushl(&s, "-fw_cfg", NULL);
		strv_pushf(&s, "name=opt/%.*s,string=%s",
			   (int)(eq ? (size_t)(eq - o->fw_cfg[i]) : strlen(o->fw_cfg[i])),
			   o->fw_cfg[i], val);
	}
	/*
	 * pvpanic lets a guest kernel report its panic; QEMU then exits with
	 * status 1 instead of sitting there.
	 */
	strv_pushl(&s, "-device", "pvpanic");
	strv_pushl(&s, "-action", "panic=exit-failure");
	if (o->guest_error_log) {
		/* QEMU logs "Guest crashed" there before it exits on a guest panic. */
		strv_pushl(&s, "-d", "guest_errors");
		strv_pushl(&s, "-D", o->guest_error_log);
	}
	return s.v;
}

void qemu_argv_free(char **argv)
{
	char **p;

	if (!argv)
		return;
	for (p = argv; *p; p++)
		free(*p);
	free(argv);
}

int qemu_fw_cfg_check(const char *arg, const char **ret_why)
{
	const char *eq = strchr(arg, '=');
	const char *p;

	if (!eq || eq == arg) {
		*ret_why = "expected NAME=STRING";
		return -EINVAL;
	}
	if (eq - arg > 51) {
		*ret_why = "NAME is longer than 51 bytes";
		return -EINVAL;
	}
	if (arg[0] == '/') {
		*ret_why = "NAME starts with '/'";
		return -EINVAL;
	}
	for (p = arg; p < eq; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("._-/", *p)) {
			*ret_why = "NAME has a character other than letters, digits and . _ - /";
			return -EINVAL;
		}
	}
	for (p = eq + 1; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			*ret_why = "STRING has a byte that is not printable ASCII";
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_port(const char *s, size_t len, uint16_t *ret)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int qemu_forward_parse(const char *s, struct qemu_forward *ret)
{
	struct qemu_forward f = {0};
	const char *colon;

	if (str_startswith(s, "tcp:"))
		s += 4;
	else if (str_startswith(s, "udp:"))
		f.udp = true, s += 4;
	else
		return -EINVAL;
	colon = strchr(s, ':');
	if (!colon || parse_port(s, (size_t)(colon - s), &f.host_port) < 0 ||
	    parse_port(colon + 1, strlen(colon + 1), &f.guest_port) < 0)
		return -EINVAL;
	*ret = f;
	return 0;
}

int qemu_disk_format(const char *path, const char **ret_format)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char sector[512];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	n = pread(fd, sector, sizeof(sector), 0);
	if (n < 0)
		return -errno;
	if (n >= 4 && !memcmp(sector, "QFI\xfb", 4)) {
		*ret_format = "qcow2";
		return 0;
	}
	/* imgforge export's other formats: a VMDK, a dynamic VHD (a fixed one reads as raw). */
	if (n >= 4 && !memcmp(sector, "KDMV", 4)) {
		*ret_format = "vmdk";
		return 0;
	}
	if (n >= 8 && !memcmp(sector, "conectix", 8)) {
		*ret_format = "vpc";
		return 0;
	}
	if (n < (ssize_t)sizeof(sector))
		return -ENODATA;
	/* An MBR, or the protective MBR in front of a GPT, ends the first sector with 55 AA. */
	if (sector[510] != 0x55 || sector[511] != 0xaa)
		return -ENOEXEC;
	*ret_format = "raw";
	return 0;
}

bool qemu_kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int qemu_find_ovmf(const char *dir, char **ret_code, char **ret_vars)
{
	/* Non-Secure-Boot builds: the secboot ones need SMM and enrolled keys. */
	static const char *const pairs[][2] = {
		{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
		{"OVMF_CODE.fd", "OVMF_VARS.fd"},
	};
	size_t i;

	if (!dir)
		dir = OVMF_DEFAULT_DIR;
	for (i = 0; i < ARRAY_SIZE(pairs); i++) {
		_cleanup_free_ char *code = path_join(dir, pairs[i][0]);
		_cleanup_free_ char *vars = path_join(dir, pairs[i][1]);

		if (access(code, R_OK) == 0 && access(vars, R_OK) == 0) {
			*ret_code = TAKE_PTR(code);
			*ret_vars = TAKE_PTR(vars);
			return 0;
		}
	}
	return -ENOENT;
}

int qemu_find_program(const char *name, char **ret_path)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			return -errno;
		*ret_path = xstrdup(name);
		return 0;
	}
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		_cleanup_free_ char *dir = NULL, *full = NULL;

		end = strchrnul(p, ':');
		dir = end > p ? xstrndup(p, (size_t)(end - p)) : xstrdup(".");
		full = path_join(dir, name);
		if (access(full, X_OK) == 0) {
			*ret_path = TAKE_PTR(full);
			return 0;
		}
	}
	return -ENOENT;
}

/* --- console matcher -------------------------------------------------------- */

/* Where we are in an escape sequence; they may straddle feeds. */
enum esc_state {
	ESC_NONE,
	ESC_START,	/* after ESC */
	ESC_CSI,	/* ESC [ ... up to a final byte 0x40-0x7e */
	ESC_STRING,	/* ESC ] (or P, X, ^, _) ... up to BEL or ESC \ */
	ESC_STRING_ESC, /* ESC inside a string: ESC \ ends it */
	ESC_NF,		/* ESC + intermediates (e.g. "ESC ( B") up to a final byte */
};

struct qemu_console {
	const char *const *patterns;
	size_t n;
	regex_t *re;
	bool *matched;
	size_t nmatched;
	bool panicked;
	enum esc_state esc;
	struct strbuf line; /* the current line, cleaned */
	/* How the current line was matched since it last grew. */
	enum { LINE_UNCHECKED, LINE_CHECKED_PARTIAL, LINE_CHECKED_WHOLE } line_state;
	char *ring[QEMU_CONSOLE_LINES];
	size_t ring_head; /* next slot to write */
	size_t ring_count;
};

int qemu_console_new(const char *const *patterns, size_t n, struct qemu_console **ret,
		     char **ret_err)
{
	struct qemu_console *c = xcalloc(1, sizeof(*c));
	size_t i;
	int r;

	c->patterns = patterns;
	c->re = xcalloc(n ? n : 1, sizeof(*c->re));
	c->matched = xcalloc(n ? n : 1, sizeof(*c->matched));
	for (i = 0; i < n; i++) {
		r = regcomp(&c->re[i], patterns[i], REG_EXTENDED | REG_NOSUB);
		if (r) {
			char msg[256];

			regerror(r, &c->re[i], msg, sizeof(msg));
			if (ret_err)
				*ret_err = xasprintf("bad regular expression '%s': %s", patterns[i],
						     msg);
			qemu_console_free(c);
			return -EINVAL;
		}
		c->n = i + 1;
	}
	*ret = c;
	return 0;
}

void qemu_console_free(struct qemu_console *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		regfree(&c->re[i]);
	for (i = 0; i < QEMU_CONSOLE_LINES; i++)
		free(c->ring[i]);
	free(c->re);
	free(c->matched);
	strbuf_release(&c->line);
	free(c);
}

/* whole: the line has ended (or stopped growing), so `$` may match at its end. */
static void console_match(struct qemu_console *c, const char *line, bool whole)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!c->matched[i] &&
		    regexec(&c->re[i], line, 0, NULL, whole ? 0 : REG_NOTEOL) == 0) {
			c->matched[i] = true;
			c->nmatched++;
		}
	if (strstr(line, "Kernel panic"))
		c->panicked = true;
}

/*
 * End the current line: match it as a whole line unless it was matched so
 * as it stands, and keep it in the ring. Lines that were only escape
 * sequences (screen clearing) are empty here and not kept: they would crowd
 * the report.
 */
static void console_end_line(struct qemu_console *c)
{
	const char *s = strbuf_str(&c->line);

	if (c->line_state != LINE_CHECKED_WHOLE)
		console_match(c, s, true);
	if (c->line.len) {
		free(c->ring[c->ring_head]);
		c->ring[c->ring_head] = strbuf_detach(&c->line);
		c->ring_head = (c->ring_head + 1) % QEMU_CONSOLE_LINES;
		if (c->ring_count < QEMU_CONSOLE_LINES)
			c->ring_count++;
	}
	strbuf_reset(&c->line);
	c->line_state = LINE_UNCHECKED;
}

static void console_byte(struct qemu_console *c, unsigned char ch)
{
	switch (c->esc) {
	case ESC_START:
		if (ch == '[')
			c->esc = ESC_CSI;
		else if (ch == ']' || ch == 'P' || ch == 'X' || ch == '^' || ch == '_')
			c->esc = ESC_STRING;
		else if (ch >= 0x20 && ch <= 0x2f)
			c->esc = ESC_NF;
		else
			c->esc = ESC_NONE; /* a two-byte sequence such as ESC c */
		return;
	case ESC_CSI:
		/* Parameters and intermediates are 0x20-0x3f; anything else ends it. */
		if (ch < 0x20 || ch > 0x3f)
			c->esc = ESC_NONE;
		return;
	case ESC_STRING:
		if (ch == 0x07)
			c->esc = ESC_NONE;
		else if (ch == 0x1b)
			c->esc = ESC_STRING_ESC;
		return;
	case ESC_STRING_ESC:
		c->esc = ch == '\\' ? ESC_NONE : ESC_STRING;
		return;
	case ESC_NF:
		if (ch < 0x20 || ch > 0x2f)
			c->esc = ESC_NONE;
		return;
	case ESC_NONE:
		break;
	}
	if (ch == 0x1b) {
		c->esc = ESC_START;
	} else if (ch == '\n') {
		console_end_line(c);
	} else if (ch == '\t' || (ch >= 0x20 && ch != 0x7f)) {
		strbuf_addch(&c->line, (char)ch);
		c->line_state = LINE_UNCHECKED;
		if (c->line.len >= CONSOLE_LINE_MAX)
			console_end_line(c);
	}
	/* \r and other control characters are dropped. */
}

size_t qemu_console_feed(struct qemu_console *c, const char *data, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		console_byte(c, (unsigned char)data[i]);
	/* The line so far, without `$` at its end: more of it may come. */
	if (c->line.len && c->line_state == LINE_UNCHECKED) {
		console_match(c, strbuf_str(&c->line), false);
		c->line_state = LINE_CHECKED_PARTIAL;
	}
	return c->nmatched;
}

bool qemu_console_pending(const struct qemu_console *c)
{
	return c->line.len && c->line_state != LINE_CHECKED_WHOLE;
}

size_t qemu_console_idle(struct qemu_console *c)
{
	if (qemu_console_pending(c)) {
		console_match(c, strbuf_str(&c->line), true);
		c->line_state = LINE_CHECKED_WHOLE;
	}
	return c->nmatched;
}

bool qemu_console_all_matched(const struct qemu_console *c)
{
	return c->nmatched == c->n;
}

bool qemu_console_matched(const struct qemu_console *c, size_t i)
{
	return i < c->n && c->matched[i];
}

const char *qemu_console_waiting_for(const struct qemu_console *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!c->matched[i])
			return c->patterns[i];
	return NULL;
}

bool qemu_console_panicked(const struct qemu_console *c)
{
	return c->panicked;
}

size_t qemu_console_last_lines(const struct qemu_console *c, const char *ret[QEMU_CONSOLE_LINES])
{
	size_t want = c->ring_count, i, k = 0;

	if (c->line.len && want == QEMU_CONSOLE_LINES)
		want--;
	for (i = c->ring_count - want; i < c->ring_count; i++) {
		size_t slot = (c->ring_head + QEMU_CONSOLE_LINES - c->ring_count + i) %
			      QEMU_CONSOLE_LINES;
		ret[k++] = c->ring[slot];
	}
	if (c->line.len)
		ret[k++] = c->line.buf;
	return k;
}

/* --- running ------------------------------------------------------------------ */

static volatile sig_atomic_t boot_signal;

static void boot_on_signal(int sig)
{
	boot_signal = sig;
}

/* What one run needs besides the options: pipes, child, buffers. */
struct boot_run {
	const struct qemu_boot_opts *o;
	struct qemu_result *res;
	pid_t pid;
	int out_fd, err_fd; /* read ends; -1 once at EOF */
	struct strbuf err;
	size_t console_bytes;
	char last_byte;		 /* the last console byte, to end the echo on a new line */
	int64_t last_console_ms; /* when console bytes last came */
	bool exited;
	int status;
};

/* Read whatever is there on the console and stderr pipes, without blocking. */
static void boot_drain(struct boot_run *b)
{
	char buf[16384];
	ssize_t n;

	while (b->out_fd >= 0) {
		n = read(b->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close(b->out_fd);
			b->out_fd = -1;
			break;
		}
		if (b->o->echo) {
			fwrite(buf, 1, (size_t)n, b->o->echo);
			fflush(b->o->echo);
		}
		if (b->o->log) {
			fwrite(buf, 1, (size_t)n, b->o->log);
			fflush(b->o->log);
		}
		qemu_console_feed(b->res->console, buf, (size_t)n);
		b->last_console_ms = monotonic_ms();
		b->console_bytes += (size_t)n;
		b->last_byte = buf[n - 1];
	}
	while (b->err_fd >= 0) {
		n = read(b->err_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close(b->err_fd);
			b->err_fd = -1;
			break;
		}
		if (b->o->qemu_stderr) {
			fwrite(buf, 1, (size_t)n, b->o->qemu_stderr);
			fflush(b->o->qemu_stderr);
		}
		if (b->err.len < STDERR_MAX)
			strbuf_add(&b->err, buf,
				   (size_t)n < STDERR_MAX - b->err.len ? (size_t)n
								       : STDERR_MAX - b->err.len);
	}
}

static bool boot_reap(struct boot_run *b, bool block)
{
	pid_t r;

	if (b->exited)
		return true;
	do
		r = waitpid(b->pid, &b->status, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == b->pid)
		b->exited = true;
	return b->exited;
}

/* Wait for input or the deadline (ms from now, -1: none); signals wake it. */
static void boot_wait(struct boot_run *b, int64_t ms, const sigset_t *unblocked)
{
	struct pollfd p[2];
	struct timespec ts;
	nfds_t n = 0;

	if (b->out_fd >= 0)
		p[n++] = (struct pollfd){.fd = b->out_fd, .events = POLLIN};
	if (b->err_fd >= 0)
		p[n++] = (struct pollfd){.fd = b->err_fd, .events = POLLIN};
	/* Wake at least every 200 ms to notice QEMU exiting with its pipes passed on. */
	if (ms < 0 || ms > 200)
		ms = 200;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	ppoll(p, n, &ts, unblocked);
}

/* SIGTERM, then SIGKILL after STOP_GRACE_MS; keep draining so QEMU never blocks on a write. */
static void boot_stop(struct boot_run *b, const sigset_t *unblocked)
{
	int64_t end;

	if (boot_reap(b, false))
		return;
	kill(-b->pid, SIGTERM);
	end = monotonic_ms() + STOP_GRACE_MS;
	while (!boot_reap(b, false) && monotonic_ms() < end) {
		boot_wait(b, 50, unblocked);
		boot_drain(b);
	}
	if (!b->exited) {
		kill(-b->pid, SIGKILL);
		boot_reap(b, true);
	}
}

/*
 * Start QEMU once with vm and follow it to an outcome. Returns -errno with
 * ret->error set if it could not be started.
 */
static int boot_once(const struct qemu_boot_opts *o, const struct qemu_opts *vm,
		     struct qemu_result *ret, const sigset_t *oldmask, char **tmpdir,
		     size_t *ret_console_bytes)
{
	struct boot_run b = {
		.o = o, .res = ret, .pid = -1, .out_fd = -1, .err_fd = -1, .err = STRBUF_INIT};
	char **argv = qemu_argv_build(vm);
	int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
	struct spawn_start_opts so = {0};
	int64_t start, deadline, panic_deadline = -1;
	size_t err_len;
	int r = 0;

	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		ret->error = xasprintf("cannot create a pipe: %s", strerror(-r));
		goto out;
	}
	/*
	 * A session of its own: the terminal's Ctrl-C reaches imgforge only,
	 * which stops QEMU itself, and a kept VM outlives the terminal (and
	 * imgforge: no death signal then).
	 */
	so.stdout_fd = out_pipe[1];
	so.stderr_fd = err_pipe[1];
	so.new_session = true;
	so.outlive = o->keep;
	so.death_signal = SIGTERM;
	start = monotonic_ms();
	r = spawn_start(argv, &so, &b.pid);
	if (r < 0) {
		ret->error = xasprintf("cannot run '%s': %s", argv[0], strerror(-r));
		goto out;
	}
	close(out_pipe[1]);
	close(err_pipe[1]);
	b.out_fd = out_pipe[0];
	b.err_fd = err_pipe[0];
	out_pipe[0] = out_pipe[1] = err_pipe[0] = err_pipe[1] = -1;
	fcntl(b.out_fd, F_SETFL, O_NONBLOCK);
	fcntl(b.err_fd, F_SETFL, O_NONBLOCK);

	deadline = o->timeout_sec ? start + (int64_t)o->timeout_sec * 1000 : -1;
	for (;;) {
		int64_t t, wait = -1;

		boot_drain(&b);
		t = monotonic_ms();
		/* A line that stopped growing is a prompt waiting for input: match it whole. */
		if (qemu_console_pending(ret->console) && t - b.last_console_ms >= CONSOLE_QUIET_MS)
			qemu_console_idle(ret->console);
		/*
		 * The firmware is printing, so QEMU has opened every file in the
		 * temporary directory: remove it now, and nothing is left behind
		 * even if imgforge is killed.
		 */
		if (b.console_bytes && *tmpdir) {
			rm_rf(*tmpdir);
			free(*tmpdir);
			*tmpdir = NULL;
		}
		if (boot_signal) {
			ret->outcome = QEMU_INTERRUPTED;
			break;
		}
		if (qemu_console_panicked(ret->console)) {
			if (panic_deadline < 0)
				panic_deadline = t + PANIC_GRACE_MS;
			if (t >= panic_deadline || (b.out_fd < 0 && boot_reap(&b, true))) {
				ret->outcome = QEMU_PANIC;
				break;
			}
		} else if (o->nexpect && qemu_console_all_matched(ret->console)) {
			ret->outcome = QEMU_MATCHED;
			break;
		}
		/* At EOF QEMU has exited (or is about to): collect its status. */
		if ((b.out_fd < 0 && b.err_fd < 0 && boot_reap(&b, true)) || boot_reap(&b, false)) {
			boot_drain(&b);
			qemu_console_idle(ret->console); /* the console has ended */
			if (qemu_console_panicked(ret->console))
				ret->outcome = QEMU_PANIC;
			else if (o->nexpect && qemu_console_all_matched(ret->console))
				ret->outcome = QEMU_MATCHED;
			else
				ret->outcome = QEMU_EXITED;
			break;
		}
		if (deadline >= 0 && t >= deadline) {
			ret->outcome = QEMU_TIMEOUT;
			break;
		}
		if (deadline >= 0)
			wait = deadline - t;
		if (panic_deadline >= 0 && (wait < 0 || panic_deadline - t < wait))
			wait = panic_deadline - t;
		if (qemu_console_pending(ret->console)) {
			int64_t quiet = b.last_console_ms + CONSOLE_QUIET_MS - t;
			if (wait < 0 || quiet < wait)
				wait = quiet < 0 ? 0 : quiet;
		}
		boot_wait(&b, wait, oldmask);
	}
	ret->seconds = (double)(monotonic_ms() - start) / 1000.0;
	/* What QEMU says while being stopped ("terminating on signal") is noise. */
	err_len = b.err.len;

	if (ret->outcome == QEMU_MATCHED && o->keep && !b.exited) {
		ret->pid = b.pid;
	} else {
		boot_stop(&b, oldmask);
		boot_drain(&b);
	}
	if (ret->outcome != QEMU_EXITED && b.err.len > err_len) {
		b.err.buf[err_len] = '\0';
		b.err.len = err_len;
	}
	if (o->echo && b.console_bytes && b.last_byte != '\n') {
		fputc('\n', o->echo);
		fflush(o->echo);
	}
	ret->exit_status = -1;
	if (b.exited) {
		if (WIFEXITED(b.status))
			ret->exit_status = WEXITSTATUS(b.status);
		else if (WIFSIGNALED(b.status))
			ret->exit_status = 128 + WTERMSIG(b.status);
	}
	if (ret->outcome == QEMU_INTERRUPTED)
		ret->exit_status = 128 + boot_signal;
out:
	if (b.out_fd >= 0)
		close(b.out_fd);
	if (b.err_fd >= 0)
		close(b.err_fd);
	for (int i = 0; i < 2; i++) {
		if (out_pipe[i] >= 0)
			close(out_pipe[i]);
		if (err_pipe[i] >= 0)
			close(err_pipe[i]);
	}
	qemu_argv_free(argv);
	free(ret->qemu_stderr);
	ret->qemu_stderr = strbuf_detach(&b.err);
	*ret_console_bytes = b.console_bytes;
	return r;
}

/*
 * Whether QEMU logged a guest panic (pvpanic) before it exited. fd is the
 * log, opened before QEMU truncated it: the path may be gone by now.
 */
static bool guest_crashed(int fd)
{
	static const char needle[] = "Guest crashed";
	char buf[65536 + sizeof(needle)];
	size_t keep = 0;
	ssize_t n;

	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return false;
	/* Keep a tail of each block so that a match across blocks is found. */
	while ((n = read(fd, buf + keep, sizeof(buf) - 1 - keep)) > 0) {
		size_t len = keep + (size_t)n;

		buf[len] = '\0';
		if (memmem(buf, len, needle, sizeof(needle) - 1))
			return true;
		keep = len < sizeof(needle) ? len : sizeof(needle) - 1;
		memmove(buf, buf + len - keep, keep);
	}
	return false;
}

/* The first line of QEMU's messages, for a one-line warning. */
static char *first_line(const char *s)
{
	return xstrndup(s, strcspn(s, "\n"));
}

int qemu_boot(const struct qemu_boot_opts *o, struct qemu_result *ret)
{
	struct qemu_opts vm = o->vm;
	_cleanup_free_ char *qemu = NULL, *code = NULL, *vars_template = NULL, *vars = NULL;
	_cleanup_free_ char *tmpdir = NULL, *guest_log = NULL;
	_cleanup_close_ int guest_log_fd = -1;
	const char *tmp = getenv("TMPDIR");
	struct sigaction sa = {.sa_handler = boot_on_signal}, old_int, old_term;
	sigset_t block, oldmask;
	bool auto_accel = vm.accel == QEMU_ACCEL_AUTO;
	size_t console_bytes = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->exit_status = -1;
	ret->pid = -1;
	ret->qemu_stderr = xstrdup("");
	r = qemu_console_new(o->expect, o->nexpect, &ret->console, &ret->error);
	if (r < 0)
		return r;

	r = qemu_find_program(vm.qemu ? vm.qemu : QEMU_DEFAULT_BINARY, &qemu);
	if (r < 0) {
		ret->error = xasprintf("%s not found: install the Debian package qemu-system-x86",
				       vm.qemu ? vm.qemu : QEMU_DEFAULT_BINARY);
		return r;
	}
	vm.qemu = qemu;
	if (auto_accel)
		vm.accel = qemu_kvm_usable() ? QEMU_ACCEL_KVM : QEMU_ACCEL_TCG;
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (!vm.disk_format) {
		r = qemu_disk_format(vm.disk, &vm.disk_format);
		if (r == -ENODATA || r == -ENOEXEC) {
			ret->error = xasprintf(
				"'%s' is not a disk image: %s; boot the disk.raw (or an export of "
				"it) "
				"that 'imgforge build' writes for an image with a disk: section",
				vm.disk,
				r == -ENODATA
					? "it is shorter than one sector"
					: "no qcow2 header and no partition table (MBR or GPT)");
			return r;
		}
		if (r < 0) {
			ret->error = xasprintf("cannot open '%s': %s", vm.disk, strerror(-r));
			return r;
		}
	}
	if (vm.firmware == QEMU_FW_UEFI && !vm.ovmf_code) {
		r = qemu_find_ovmf(NULL, &code, &vars_template);
		if (r < 0) {
			ret->error = xasprintf("no OVMF firmware in %s: install the Debian "
					       "package ovmf (or use --firmware bios)",
					       OVMF_DEFAULT_DIR);
			return r;
		}
		vm.ovmf_code = code;
		vm.ovmf_vars = vars_template;
	}
	/* For the private variable store and QEMU's guest error log. */
	tmpdir = xasprintf("%s/imgforge-boot-XXXXXX", tmp);
	if (!mkdtemp(tmpdir)) {
		r = -errno;
		ret->error = xasprintf("cannot create a temporary directory in %s: %s", tmp,
				       strerror(-r));
		free(TAKE_PTR(tmpdir));
		return r;
	}
	guest_log = path_join(tmpdir, "guest-errors.log");
	vm.guest_error_log = guest_log;
	guest_log_fd = open(guest_log, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (vm.firmware == QEMU_FW_UEFI) {
		/* The guest writes its variable store: give it a private copy. */
		vars = path_join(tmpdir, "OVMF_VARS.fd");
		r = copy_file(vm.ovmf_vars, vars, 0600);
		if (r < 0) {
			ret->error = xasprintf("cannot copy '%s' to '%s': %s", vm.ovmf_vars, vars,
					       strerror(-r));
			rm_rf(tmpdir);
			return r;
		}
		vm.ovmf_vars = vars;
	}

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	boot_signal = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	if (o->on_start)
		o->on_start(vm.accel, NULL, o->userdata);
	r = boot_once(o, &vm, ret, &oldmask, &tmpdir, &console_bytes);
	/*
	 * /dev/kvm can open and still refuse this CPU model (some nested
	 * setups): when QEMU under KVM fails before the guest printed anything,
	 * try once more with TCG rather than fail the boot.
	 */
	if (r == 0 && auto_accel && vm.accel == QEMU_ACCEL_KVM && ret->outcome == QEMU_EXITED &&
	    ret->exit_status != 0 && console_bytes == 0) {
		_cleanup_free_ char *why = first_line(ret->qemu_stderr);

		vm.accel = QEMU_ACCEL_TCG;
		if (o->on_start)
			o->on_start(vm.accel, why, o->userdata);
		r = boot_once(o, &vm, ret, &oldmask, &tmpdir, &console_bytes);
	}
	ret->accel = vm.accel;
	if (r == 0 && ret->outcome == QEMU_EXITED && ret->exit_status == 1 &&
	    guest_crashed(guest_log_fd))
		ret->outcome = QEMU_PANIC;

	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	/* QEMU opened the variable store at start-up: a kept VM does not need the path. */
	if (tmpdir)
		rm_rf(tmpdir);
	return r;
}

void qemu_result_release(struct qemu_result *r)
{
	if (!r)
		return;
	qemu_console_free(r->console);
	free(r->qemu_stderr);
	free(r->error);
	memset(r, 0, sizeof(*r));
}
