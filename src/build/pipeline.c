/* SPDX-License-Identifier: MIT */
/*
 * imgforge build, stage by stage. Every stage writes into a temporary file
 * and hands it to the cache only when complete; outputs are written under
 * temporary names and renamed; the registry row is the last thing written,
 * in one transaction. A build killed at any point therefore leaves no partial
 * file under a final name and no row, and the next build just works.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/cache.h"
#include "build/disk.h"
#include "fs/dpkg.h"
#include "fs/ext4.h"
#include "net/fetch.h"
#include "core/hash.h"
#include "core/json.h"
#include "build/pipeline.h"
#include "store/registry.h"
#include "build/services.h"
#include "fs/tree.h"

struct ctx {
	struct recipe *r;
	const struct stage_keys *keys;
	const struct build_opts *o;
	struct cache *cache;
	char *outdir;
	char *log_path;
	int log_fd;
	int64_t epoch;
	struct registry_build *rec;
	time_t t0;
};

/* Log a step: to the terminal (unless --quiet) and always to the build log. */
static void step(struct ctx *c, const char *fmt, ...) _printf_(2, 3);
static void step(struct ctx *c, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	info("%s", sb.buf);
	if (c->log_fd >= 0) {
		strbuf_addch(&sb, '\n');
		if (write(c->log_fd, sb.buf, sb.len) < 0) {
			/* the log is best effort; the terminal already has the line */
		}
	}
	strbuf_release(&sb);
}

static int fail(struct ctx *c, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(struct ctx *c, int r, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	error("%s", sb.buf);
	if (c->log_fd >= 0) {
		if (write(c->log_fd, "error: ", 7) < 0 || write(c->log_fd, sb.buf, sb.len) < 0 ||
		    write(c->log_fd, "\n", 1) < 0) {
			/* best effort */
		}
	}
	strbuf_release(&sb);
	return r < 0 ? r : -EINVAL;
}

static double elapsed(struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * Take the stage's cache lock: another build of the same key is running, so
 * wait for it and then hit the cache instead of building the key twice.
 */
static int lock_stage(struct ctx *c, const char *stage, const char *key)
{
	struct strbuf err = STRBUF_INIT;
	int r = cache_lock(c->cache, key, false, &err);

	if (r == -EAGAIN) {
		step(c, "%s: waiting for another build of stage %s (key %.12s)", stage, stage, key);
		r = cache_lock(c->cache, key, true, &err);
	}
	if (r < 0)
		r = fail(c, r, "cache: %s", err.buf);
	strbuf_release(&err);
	return r;
}

/* ------------------------------------------------------------------------ */
/* base stage */

/*
 * The most telling error line of mmdebstrap's output in the log: the first
 * "E: " line that is not mmdebstrap's own summary of a failed step (those
 * repeat the command line), else the last "E: " line.
 */
static char *last_error_line(const char *log_path, off_t from)
{
	_cleanup_free_ char *buf = NULL;
	char *first = NULL, *last = NULL, *line, *save = NULL;
	size_t len;

	if (read_file(log_path, 64 << 20, &buf, &len) < 0)
		return xstrdup("(no output)");
	if ((size_t)from > len)
		from = 0;
	for (line = strtok_r(buf + from, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!str_startswith(line, "E: "))
			continue;
		last = line;
		if (!first && !str_startswith(line, "E: setup failed") &&
		    !str_startswith(line, "E: mmdebstrap failed") && !strstr(line, " failed: E: "))
			first = line;
	}
	return xstrdup(first ? first : last ? last : "(see the log)");
}

static const char *const minimize_excludes[] = {
	"path-exclude=/usr/share/man/*",    "path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
	"path-exclude=/usr/share/lintian/*", "path-exclude=/usr/share/linda/*",
};

/*
 * Copy mmdebstrap's output into the build log, and on a terminal keep one
 * live line with the elapsed time and its latest message (it does not
 * scroll; the full output is in the log).
 */
static void follow_output(struct ctx *c, int fd, struct timespec *t0)
{
	bool live = isatty(2) && log_get_level() == LOG_NORMAL;
	struct strbuf line = STRBUF_INIT;
	char buf[8192];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		ssize_t i;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (write(c->log_fd, buf, (size_t)n) < 0) {
			/* the log is best effort */
		}
		if (log_get_level() >= LOG_VERBOSE && write(2, buf, (size_t)n) < 0) {
			/* nothing to do */
		}
		for (i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				strbuf_addch(&line, buf[i]);
				continue;
			}
			if (live && line.len) {
				double e = elapsed(t0);
				fprintf(stderr, "\r\033[Kbase: mmdebstrap %d:%02d %.60s",
					(int)e / 60, (int)e % 60, line.buf);
				fflush(stderr);
			}
			strbuf_reset(&line);
		}
	}
	if (live)
		fputs("\r\033[K", stderr);
	close(fd);
	strbuf_release(&line);
}

static int run_mmdebstrap(struct ctx *c, const char *out_tar)
{
	const struct ynode *base = recipe_get(c->r, "base");
	const struct ynode *pkgs = recipe_get(c->r, "packages");
	const struct ynode *bpkgs = ynode_map_get(base, "packages");
	const struct ynode *comps = ynode_map_get(base, "components");
	const struct ynode *excl = ynode_map_get(base, "exclude");
	const struct ynode *keyring = ynode_map_get(base, "keyring");
	const char *mirror = recipe_get_str(c->r, "base.mirror", NULL);
	const char *minimize = recipe_get_str(c->r, "base.minimize", "true");
	char **argv = NULL;
	size_t n = 0, alloc = 0, i;
	struct strbuf inc = STRBUF_INIT, cs = STRBUF_INIT;
	struct timespec t;
	off_t log_start;
	pid_t pid;
	int status = 0, r = 0, pipefd[2];

#define ARG(s) (GROW(argv, alloc, n + 2), argv[n++] = (s))
	ARG(xstrdup("mmdebstrap"));
	ARG(xasprintf("--mode=%s", geteuid() == 0 ? "root" : "unshare"));
	ARG(xstrdup("--format=tar"));
	ARG(xasprintf("--variant=%s", recipe_get_str(c->r, "base.variant", "minbase")));
	ARG(xasprintf("--architectures=%s", recipe_get_str(c->r, "base.architecture", "amd64")));
	for (i = 0; comps && i < comps->n; i++)
		strbuf_addf(&cs, "%s%s", i ? "," : "", comps->v[i]->str);
	if (cs.len)
		ARG(xasprintf("--components=%s", cs.buf));
	for (i = 0; bpkgs && i < bpkgs->n; i++)
		strbuf_addf(&inc, "%s%s", inc.len ? "," : "", bpkgs->v[i]->str);
	for (i = 0; pkgs && i < pkgs->n; i++)
		strbuf_addf(&inc, "%s%s", inc.len ? "," : "", pkgs->v[i]->str);
	if (inc.len)
		ARG(xasprintf("--include=%s", inc.buf));
	if (keyring && keyring->abspath)
		ARG(xasprintf("--keyring=%s", keyring->abspath));
	if (strcmp(minimize, "false") && strcmp(minimize, "no") && strcmp(minimize, "off"))
		for (i = 0; i < ARRAY_SIZE(minimize_excludes); i++)
			ARG(xasprintf("--dpkgopt=%s", minimize_excludes[i]));
	for (i = 0; excl && i < excl->n; i++)
		ARG(xasprintf("--dpkgopt=path-exclude=%s", excl->v[i]->str));
	/* Reproducible: mmdebstrap clamps to SOURCE_DATE_EPOCH itself when set. */
	ARG(xstrdup(recipe_get_str(c->r, "base.suite", "bookworm")));
	ARG(xstrdup(out_tar));
	if (mirror && *mirror)
		ARG(xstrdup(mirror));
	argv[n] = NULL;
#undef ARG
	strbuf_release(&inc);
	strbuf_release(&cs);

	{
		struct strbuf line = STRBUF_INIT;
		for (i = 0; i < n; i++)
			strbuf_addf(&line, "%s%s", i ? " " : "", argv[i]);
		step(c, "base: running %s", line.buf);
		strbuf_release(&line);
	}
	log_start = lseek(c->log_fd, 0, SEEK_END);
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return fail(c, -errno, "cannot start mmdebstrap: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "E: cannot run mmdebstrap: %s\n", strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	if (pid < 0)
		r = fail(c, -errno, "cannot start mmdebstrap: %s", strerror(errno));
	else {
		follow_output(c, pipefd[0], &t);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			_cleanup_free_ char *why = last_error_line(c->log_path, log_start);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
				r = fail(c, -ENOENT,
					 "mmdebstrap is not installed: install the Debian package "
					 "'mmdebstrap' (make deps does)");
			else
				r = fail(c, -EIO, "mmdebstrap failed: %s (full log: %s)", why,
					 c->log_path);
		} else {
			step(c, "base: mmdebstrap done in %.0f s", elapsed(&t));
		}
	}
	for (i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return r;
}

static int fetch_progress(void *userdata, uint64_t done, uint64_t total)
{
	(void)userdata;
	if (isatty(2) && log_get_level() >= LOG_NORMAL) {
		char a[32], b[32];
		fprintf(stderr, "\rbase: downloading %s of %s   ", format_size(done, a, sizeof(a)),
			total ? format_size(total, b, sizeof(b)) : "?");
	}
	return 0;
}

static int base_stage(struct ctx *c, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL;
	const struct ynode *tarball = recipe_get(c->r, "base.tarball");
	char sha[SHA256_HEX_LEN];
	int r;

	r = cache_lookup(c->cache, c->keys->base, c->o->verify ? CACHE_VERIFY_HASH
							      : CACHE_VERIFY_METADATA,
			 ret_path, &err);
	if (r > 0) {
		step(c, "base: cached (%.12s)", c->keys->base);
		strbuf_release(&err);
		return 1;
	}
	if (r < 0)
		goto cache_error;
	if (err.len)
		step(c, "base: cache entry dropped: %s", err.buf);
	strbuf_reset(&err);

	if (tarball) {
		struct fetch_opts fo = FETCH_OPTS_DEFAULT;
		const char *src = tarball->abspath ? tarball->abspath : tarball->str;
		const char *want = recipe_get_str(c->r, "base.sha256", "");

		/* A stable download name: an interrupted download resumes next time. */
		r = cache_download_path(c->cache, want, &tmp, &err);
		if (r < 0)
			goto cache_error;
		fo.progress = fetch_progress;
		step(c, "base: fetching %s", tarball->str);
		r = fetch_file(src, tmp, want, &fo, sha, &err);
		if (isatty(2) && log_get_level() >= LOG_NORMAL)
			fputs("\r\033[K", stderr);
		if (r < 0) {
			r = fail(c, r, "base: %s", err.buf);
			goto out;
		}
	} else {
		r = cache_tmpfile(c->cache, "base", &tmp, &err);
		if (r < 0)
			goto cache_error;
		r = run_mmdebstrap(c, tmp);
		if (r < 0)
			goto out;
	}
	r = cache_store(c->cache, c->keys->base, "base", tmp, ret_path, NULL, &err);
	if (r < 0)
		goto cache_error;
	step(c, "base: stored in the cache (%.12s)", c->keys->base);
	r = 0;
	goto out;
cache_error:
	r = fail(c, r, "cache: %s", err.buf);
out:
	strbuf_release(&err);
	return r;
}

/* ------------------------------------------------------------------------ */
/* rootfs stage */

static int owner_of(struct ctx *c, struct tree *t, const struct ynode *n, uint32_t *uid,
		    uint32_t *gid)
{
	struct strbuf err = STRBUF_INIT;
	int r;

	*uid = *gid = 0;
	if (!n)
		return 0;
	r = tree_resolve_owner(t, n->str, uid, gid, &err);
	if (r < 0)
		r = fail(c, r, "%s:%d:%d: owner '%s': %s", n->pos.file, n->pos.line, n->pos.col,
			 n->str, err.buf);
	strbuf_release(&err);
	return r;
}

static unsigned mode_of(const struct ynode *n, unsigned def)
{
	return n ? (unsigned)strtoul(n->str, NULL, 8) : def;
}

/* Paths that must never ship in an image: per-machine identity and secrets. */
static const char *const scrub_paths[] = {
	"/etc/ssh/ssh_host_rsa_key",	     "/etc/ssh/ssh_host_rsa_key.pub",
	"/etc/ssh/ssh_host_ecdsa_key",	     "/etc/ssh/ssh_host_ecdsa_key.pub",
	"/etc/ssh/ssh_host_ed25519_key",     "/etc/ssh/ssh_host_ed25519_key.pub",
	"/etc/ssh/ssh_host_dsa_key",	     "/etc/ssh/ssh_host_dsa_key.pub",
	"/var/lib/dbus/machine-id",	     "/var/lib/systemd/random-seed",
	"/var/lib/systemd/credential.secret", "/etc/ssl/private/ssl-cert-snakeoil.key",
	"/etc/ssl/certs/ssl-cert-snakeoil.pem",
};

static int scrub(struct ctx *c, struct tree *t)
{
	struct strbuf err = STRBUF_INIT;
	size_t i;
	int r = 0, removed = 0;

	for (i = 0; i < ARRAY_SIZE(scrub_paths); i++)
		if (tree_lookup(t, scrub_paths[i]) && tree_remove(t, scrub_paths[i], &err) == 0)
			removed++;
	/* An empty machine-id makes systemd generate one on first boot; D-Bus's
	 * copy becomes a link to it, as Debian makes it, so nothing needs to
	 * write it on a read-only root. */
	if (tree_lookup(t, "/etc/machine-id")) {
		r = tree_add_file(t, "/etc/machine-id", "", 0, NULL, 0444, 0, 0, c->epoch, &err);
		if (r == 0 && tree_lookup(t, "/var/lib/dbus"))
			r = tree_add_symlink(t, "/var/lib/dbus/machine-id", "/etc/machine-id", 0, 0,
					     c->epoch, &err);
	}
	if (r < 0)
		r = fail(c, r, "rootfs: cannot reset /etc/machine-id: %s", err.buf);
	if (removed)
		step(c, "rootfs: removed %d host keys and machine secrets from the image", removed);
	strbuf_release(&err);
	return r;
}

/* The newest "prefix<version>" entry of /boot, by version order. */
static char *newest_in_boot(struct tree *t, const char *prefix)
{
	struct tree_node *boot = tree_lookup(t, "/boot");
	struct tree_node **kids = NULL;
	size_t n = 0, i;
	char *best = NULL;

	if (!boot)
		return NULL;
	tree_sorted_children(boot, &kids, &n);
	for (i = 0; i < n; i++) {
		const char *name = kids[i]->name;
		if (!str_startswith(name, prefix) || !kids[i]->inode ||
		    !S_ISREG(kids[i]->inode->mode) || str_endswith(name, ".bak") ||
		    str_endswith(name, ".dpkg-bak"))
			continue;
		if (!best || strverscmp(name, best) > 0)
			best = (char *)name;
	}
	best = best ? xstrdup(best) : NULL;
	free(kids);
	return best;
}

/*
 * A bootable image needs /boot/vmlinuz and /boot/initrd.img: GRUB loads
 * those fixed names from whichever slot it boots, so that slots built
 * from different kernels boot with the same grub.cfg.
 */
static int kernel_links(struct ctx *c, struct tree *t)
{
	static const char *const names[][2] = { { "/boot/vmlinuz", "vmlinuz-" },
						 { "/boot/initrd.img", "initrd.img-" } };
	struct strbuf err = STRBUF_INIT;
	size_t i;
	int r = 0;

	for (i = 0; i < ARRAY_SIZE(names) && r == 0; i++) {
		_cleanup_free_ char *found = NULL;
		struct tree_node *n = tree_lookup(t, names[i][0]);

		if (n && n->inode && S_ISLNK(n->inode->mode)) {
			_cleanup_free_ char *target = path_join("/boot", n->inode->symlink);
			if (n->inode->symlink[0] == '/' ? tree_lookup(t, n->inode->symlink)
							: tree_lookup(t, target))
				continue;
			tree_remove(t, names[i][0], &err);
		} else if (n) {
			continue;
		}
		found = newest_in_boot(t, names[i][1]);
		if (!found) {
			r = fail(c, -ENOENT,
				 "the root filesystem has no %s in /boot, so the disk could not "
				 "boot: add a kernel package (linux-image-amd64 on Debian, "
				 "linux-image-virtual on Ubuntu) and initramfs-tools to packages",
				 i == 0 ? "kernel (vmlinuz-*)" : "initramfs (initrd.img-*)");
			break;
		}
		r = tree_add_symlink(t, names[i][0], found, 0, 0, c->epoch, &err);
		if (r < 0)
			r = fail(c, r, "rootfs: cannot link %s: %s", names[i][0], err.buf);
		else
			step(c, "rootfs: %s -> %s", names[i][0], found);
	}
	strbuf_release(&err);
	return r;
}

static int apply_recipe(struct ctx *c, struct tree *t)
{
	struct strbuf err = STRBUF_INIT;
	const struct ynode *ov = recipe_get(c->r, "overlays");
	const struct ynode *files = recipe_get(c->r, "files");
	const struct ynode *rm = recipe_get(c->r, "remove");
	const struct ynode *svc = recipe_get(c->r, "services");
	size_t i;
	int r = 0;

	for (i = 0; ov && i < ov->n && r == 0; i++) {
		const struct ynode *it = ov->v[i];
		const struct ynode *src = it->kind == YNODE_MAP ? ynode_map_get(it, "source") : it;
		const char *target = "/";
		uint32_t uid = 0, gid = 0;

		if (it->kind == YNODE_MAP) {
			const struct ynode *tg = ynode_map_get(it, "target");
			target = tg ? tg->str : "/";
			r = owner_of(c, t, ynode_map_get(it, "owner"), &uid, &gid);
			if (r < 0)
				break;
		}
		r = tree_add_dir(t, src->abspath, target, uid, gid, &err);
		if (r < 0)
			r = fail(c, r, "%s:%d:%d: overlay '%s': %s", src->pos.file, src->pos.line,
				 src->pos.col, src->str, err.buf);
		else
			step(c, "rootfs: overlay %s -> %s", src->str, target);
	}
	for (i = 0; files && i < files->n && r == 0; i++) {
		const struct ynode *f = files->v[i];
		const struct ynode *path = ynode_map_get(f, "path");
		const char *type = ynode_map_get(f, "type") ? ynode_map_get(f, "type")->str : "file";
		const struct ynode *content = ynode_map_get(f, "content");
		const struct ynode *source = ynode_map_get(f, "source");
		uint32_t uid, gid;

		r = owner_of(c, t, ynode_map_get(f, "owner"), &uid, &gid);
		if (r < 0)
			break;
		if (!strcmp(type, "directory"))
			r = tree_add_directory(t, path->str, mode_of(ynode_map_get(f, "mode"), 0755),
					       uid, gid, c->epoch, &err);
		else if (!strcmp(type, "symlink"))
			r = tree_add_symlink(t, path->str, ynode_map_get(f, "target")->str, uid, gid,
					     c->epoch, &err);
		else
			r = tree_add_file(t, path->str, content ? content->str : NULL,
					  content ? strlen(content->str) : 0,
					  source ? source->abspath : NULL,
					  mode_of(ynode_map_get(f, "mode"), 0644), uid, gid, c->epoch,
					  &err);
		if (r < 0)
			r = fail(c, r, "%s:%d:%d: file '%s': %s", path->pos.file, path->pos.line,
				 path->pos.col, path->str, err.buf);
	}
	if (files && files->n && r == 0)
		step(c, "rootfs: %zu files from the recipe", files->n);
	for (i = 0; svc && i < svc->n && r == 0; i++) {
		const struct ynode *list = svc->v[i];
		size_t j;

		for (j = 0; j < list->n && r == 0; j++) {
			const struct ynode *u = list->v[j];
			if (!strcmp(svc->k[i], "enable"))
				r = services_enable(t, u->str, c->epoch, &err);
			else if (!strcmp(svc->k[i], "disable"))
				r = services_disable(t, u->str, &err);
			else
				r = services_mask(t, u->str, c->epoch, &err);
			if (r < 0)
				r = fail(c, r, "%s:%d:%d: %s", u->pos.file, u->pos.line, u->pos.col,
					 err.buf);
			else
				step(c, "rootfs: %s %s", svc->k[i], u->str);
		}
	}
	for (i = 0; rm && i < rm->n && r == 0; i++) {
		const struct ynode *p = rm->v[i];
		r = tree_remove(t, p->str, &err);
		if (r == -ENOENT) {
			strbuf_reset(&err);
			r = 0;
		} else if (r < 0) {
			r = fail(c, r, "%s:%d:%d: remove '%s': %s", p->pos.file, p->pos.line,
				 p->pos.col, p->str, err.buf);
		}
	}
	if (r == 0 && recipe_get(c->r, "disk"))
		r = kernel_links(c, t);
	if (r == 0)
		r = scrub(c, t);
	strbuf_release(&err);
	return r;
}

/* --- the metadata kept next to a cached rootfs: packages and files ------- */

static void tsv_field(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '\t' || *s == '\n' || *s == '%' || *s == '\r')
			strbuf_addf(sb, "%%%02X", (unsigned char)*s);
		else
			strbuf_addch(sb, *s);
	}
}

static char *tsv_unescape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	for (; *s; s++) {
		unsigned v;
		if (*s == '%' && sscanf(s + 1, "%2X", &v) == 1) {
			strbuf_addch(&sb, (char)v);
			s += 2;
		} else {
			strbuf_addch(&sb, *s);
		}
	}
	return strbuf_detach(&sb);
}

static void walk_files(struct tree *t, struct tree_node *n, struct strbuf *out)
{
	struct tree_node **kids = NULL;
	size_t nk = 0, i;

	tree_sorted_children(n, &kids, &nk);
	for (i = 0; i < nk; i++) {
		struct tree_inode *ino = kids[i]->inode;
		_cleanup_free_ char *path = tree_node_path(kids[i]);
		char hex[SHA256_HEX_LEN] = "";

		if (!ino)
			continue;
		if (S_ISREG(ino->mode))
			hex_encode(ino->digest, SHA256_LEN, hex);
		else if (S_ISLNK(ino->mode))
			sha256_hex(ino->symlink, strlen(ino->symlink), hex);
		strbuf_addstr(out, "F\t");
		tsv_field(out, path);
		strbuf_addf(out, "\t%s\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu64 "\n",
			    hex[0] ? hex : "-", ino->mode, ino->uid, ino->gid,
			    S_ISREG(ino->mode) ? ino->size : 0);
		if (S_ISDIR(ino->mode))
			walk_files(t, kids[i], out);
	}
	free(kids);
}

static int make_meta(struct ctx *c, struct tree *t, struct strbuf *out)
{
	struct strbuf err = STRBUF_INIT;
	struct dpkg_package *pkgs = NULL;
	_cleanup_free_ char *status = NULL;
	size_t len = 0, n = 0, i;
	int r;

	r = tree_read_content(t, "/var/lib/dpkg/status", 256 << 20, &status, &len, &err);
	if (r == 0) {
		dpkg_parse_status(status, len, &pkgs, &n);
		for (i = 0; i < n; i++) {
			strbuf_addstr(out, "P\t");
			tsv_field(out, pkgs[i].name);
			strbuf_addch(out, '\t');
			tsv_field(out, pkgs[i].version);
			strbuf_addch(out, '\t');
			tsv_field(out, pkgs[i].arch);
			strbuf_addch(out, '\n');
		}
		dpkg_packages_free(pkgs, n);
	} else {
		step(c, "rootfs: no /var/lib/dpkg/status in the image: no package list");
	}
	/* The epoch the image was built with: a later build reusing it reports this one. */
	strbuf_addf(out, "E\t%" PRId64 "\n", c->epoch);
	walk_files(t, tree_root(t), out);
	strbuf_release(&err);
	return 0;
}

static void meta_key(const char *rootfs_key, char out[SHA256_HEX_LEN])
{
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge-rootfs-meta");
	sha256_update_str(h, rootfs_key);
	sha256_final_hex(h, out);
	sha256_free(h);
}

static int load_meta(struct ctx *c, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *save = NULL;
	size_t len;
	int r;

	r = read_file(path, 1 << 30, &buf, &len);
	if (r < 0)
		return fail(c, r, "cannot read the cached file list '%s': %s", path, strerror(-r));
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[8];
		int nf = 0;
		char *p = line, *tab;

		while (nf < 8) {
			f[nf++] = p;
			tab = strchr(p, '\t');
			if (!tab)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		if (f[0][0] == 'E' && nf == 2) {
			c->epoch = strtoll(f[1], NULL, 10);
		} else if (f[0][0] == 'P' && nf == 4) {
			_cleanup_free_ char *a = tsv_unescape(f[1]), *b = tsv_unescape(f[2]),
					    *d = tsv_unescape(f[3]);
			registry_build_add_package(c->rec, a, b, d);
		} else if (f[0][0] == 'F' && nf == 7) {
			_cleanup_free_ char *a = tsv_unescape(f[1]);
			registry_build_add_file(c->rec, a, strcmp(f[2], "-") ? f[2] : "",
						(uint32_t)strtoul(f[3], NULL, 10),
						(uint32_t)strtoul(f[4], NULL, 10),
						(uint32_t)strtoul(f[5], NULL, 10),
						strtoull(f[6], NULL, 10));
		}
	}
	return 0;
}

static int rootfs_stage(struct ctx *c, const char *base_path, char **ret_path)
{
	struct strbuf err = STRBUF_INIT, meta = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL, *mtmp = NULL, *meta_path = NULL;
	struct ext4_opts eo = EXT4_OPTS_INIT;
	char mkey[SHA256_HEX_LEN];
	struct tree *t = NULL;
	struct timespec ts;
	uint64_t size = 0;
	const char *sz;
	int r;

	meta_key(c->keys->rootfs, mkey);
	r = cache_lookup(c->cache, c->keys->rootfs,
			 c->o->verify ? CACHE_VERIFY_HASH : CACHE_VERIFY_METADATA, ret_path, &err);
	if (r > 0) {
		r = cache_lookup(c->cache, mkey, CACHE_VERIFY_HASH, &meta_path, &err);
		if (r > 0) {
			step(c, "rootfs: cached (%.12s)", c->keys->rootfs);
			r = load_meta(c, meta_path);
			strbuf_release(&err);
			return r < 0 ? r : 1;
		}
		free(*ret_path);
		*ret_path = NULL;
	}
	if (r < 0)
		goto cache_error;
	if (err.len)
		step(c, "rootfs: cache entry dropped: %s", err.buf);
	strbuf_reset(&err);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = tree_new();
	tree_set_default_mtime(t, c->epoch);
	step(c, "rootfs: reading the base");
	r = tree_add_archive(t, base_path, &err);
	if (r < 0) {
		r = fail(c, r, "rootfs: %s", err.buf);
		goto out;
	}
	r = apply_recipe(c, t);
	if (r < 0)
		goto out;

	r = cache_tmpfile(c->cache, "rootfs", &tmp, &err);
	if (r < 0)
		goto cache_error;
	sz = recipe_get_str(c->r, "rootfs.size", "auto");
	if (strcmp(sz, "auto"))
		parse_size(sz, &eo.size);
	eo.headroom_percent = (unsigned)atoi(recipe_get_str(c->r, "rootfs.headroom", "15"));
	eo.label = recipe_get_str(c->r, "rootfs.label", "root");
	eo.epoch = c->epoch;
	step(c, "rootfs: writing ext4");
	r = ext4_write(t, tmp, &eo, &size, &err);
	if (r < 0) {
		r = fail(c, r, "rootfs: %s", err.buf);
		goto out;
	}
	{
		char a[32];
		step(c, "rootfs: %s ext4 written in %.1f s", format_size(size, a, sizeof(a)),
		     elapsed(&ts));
	}
	make_meta(c, t, &meta);
	r = cache_tmpfile(c->cache, "meta", &mtmp, &err);
	if (r < 0)
		goto cache_error;
	r = write_file_atomic(mtmp, meta.buf ? meta.buf : "", meta.len, 0644);
	if (r < 0) {
		r = fail(c, r, "cannot write '%s': %s", mtmp, strerror(-r));
		goto out;
	}
	r = cache_store(c->cache, c->keys->rootfs, "rootfs", tmp, ret_path, NULL, &err);
	if (r < 0)
		goto cache_error;
	r = cache_store(c->cache, mkey, "meta", mtmp, &meta_path, NULL, &err);
	if (r < 0)
		goto cache_error;
	r = load_meta(c, meta_path);
	goto out;
cache_error:
	r = fail(c, r, "cache: %s", err.buf);
out:
	tree_free(t);
	strbuf_release(&meta);
	strbuf_release(&err);
	return r;
}

/* ------------------------------------------------------------------------ */
/* disk stage */

static uint64_t size_of(struct ctx *c, const char *key)
{
	uint64_t v = 0;
	const char *s = recipe_get_str(c->r, key, NULL);

	if (s)
		parse_size(s, &v);
	return v;
}

static int disk_stage(struct ctx *c, const char *root_path, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL, *tmpdir = NULL;
	struct disk_opts o = { 0 };
	struct disk_layout l;
	struct timespec ts;
	int r;

	r = cache_lookup(c->cache, c->keys->disk,
			 c->o->verify ? CACHE_VERIFY_HASH : CACHE_VERIFY_METADATA, ret_path, &err);
	if (r > 0) {
		step(c, "disk: cached (%.12s)", c->keys->disk);
		strbuf_release(&err);
		return 1;
	}
	if (r < 0)
		goto cache_error;
	if (err.len)
		step(c, "disk: cache entry dropped: %s", err.buf);
	strbuf_reset(&err);

	r = cache_tmpfile(c->cache, "disk", &tmp, &err);
	if (r < 0)
		goto cache_error;
	tmpdir = xasprintf("%s.d", tmp);
	r = mkdir_p(tmpdir, 0700);
	if (r < 0) {
		r = fail(c, r, "cannot create '%s': %s", tmpdir, strerror(-r));
		goto out;
	}
	o.seed = c->keys->disk;
	o.root_path = root_path;
	o.size = size_of(c, "disk.size");
	o.root_size = size_of(c, "disk.root_size");
	o.data_size = size_of(c, "disk.data_size");
	o.esp_size = size_of(c, "disk.esp_size");
	o.tries = (unsigned)atoi(recipe_get_str(c->r, "boot.tries", "3"));
	o.timeout = (unsigned)atoi(recipe_get_str(c->r, "boot.timeout", "1"));
	o.cmdline = recipe_get_str(c->r, "boot.cmdline", "console=ttyS0,115200");
	o.epoch = c->epoch;
	o.tmpdir = tmpdir;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	step(c, "disk: writing GPT, ESP with GRUB, root-a, root-b, data");
	r = disk_write(&o, tmp, &l, &err);
	rm_rf(tmpdir);
	if (r < 0) {
		r = fail(c, r, "disk: %s", err.buf);
		goto out;
	}
	{
		char a[32];
		step(c, "disk: %s written in %.1f s (root slots %llu MiB, data %llu MiB)",
		     format_size(l.size, a, sizeof(a)), elapsed(&ts),
		     (unsigned long long)(l.len[2] >> 20), (unsigned long long)(l.len[4] >> 20));
	}
	r = cache_store(c->cache, c->keys->disk, "disk", tmp, ret_path, NULL, &err);
	if (r < 0)
		goto cache_error;
	r = 0;
	goto out;
cache_error:
	r = fail(c, r, "cache: %s", err.buf);
out:
	strbuf_release(&err);
	return r;
}

/* ------------------------------------------------------------------------ */
/* outputs */

static int copy_file(const char *src, const char *dst)
{
	_cleanup_close_ int in = -1;
	int out, r = 0;
	struct stat st;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	/* Keep holes: copy data extents only. */
	{
		off_t off = 0;
		while (off < st.st_size) {
			off_t data = lseek(in, off, SEEK_DATA), hole;
			if (data < 0) {
				if (errno == ENXIO)
					break;
				r = -errno;
				break;
			}
			hole = lseek(in, data, SEEK_HOLE);
			if (hole < 0) {
				r = -errno;
				break;
			}
			r = copy_range(in, (uint64_t)data, out, (uint64_t)data,
				       (uint64_t)(hole - data));
			if (r < 0)
				break;
			off = hole;
		}
	}
	if (r == 0 && ftruncate(out, st.st_size) < 0)
		r = -errno;
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r;
}

static int publish(struct ctx *c, const char *name, const char *src)
{
	_cleanup_free_ char *dst = path_join(c->outdir, name);
	_cleanup_free_ char *tmp = xasprintf("%s/.%s.tmp-%ld", c->outdir, name, (long)getpid());
	char sha[SHA256_HEX_LEN];
	uint64_t size = 0;
	int r;

	r = copy_file(src, tmp);
	/* A cached object's hash is in the cache index: no need to read the copy again. */
	if (r == 0 && cache_pinned_sha256(c->cache, src, sha, &size) < 0)
		r = sha256_file(tmp, sha, &size);
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return fail(c, r, "cannot write '%s': %s", dst, strerror(-r));
	}
	registry_build_add_output(c->rec, name, sha, size);
	return 0;
}

static void write_manifest(struct ctx *c, struct strbuf *out)
{
	struct json j;
	size_t i;

	json_init(&j, out, true);
	json_begin_object(&j);
	json_kv_string(&j, "image", c->rec->image);
	json_kv_string(&j, "version", c->rec->version);
	json_kv_string(&j, "profile", c->rec->profile);
	json_kv_string(&j, "build_id", c->rec->id);
	json_kv_int(&j, "epoch", c->epoch);
	json_key(&j, "stage_keys");
	json_begin_object(&j);
	json_kv_string(&j, "base", c->keys->base);
	json_kv_string(&j, "rootfs", c->keys->rootfs);
	if (c->rec->key_disk)
		json_kv_string(&j, "disk", c->keys->disk);
	json_end_object(&j);
	json_key(&j, "outputs");
	json_begin_array(&j);
	for (i = 0; i < c->rec->n_outputs; i++) {
		json_begin_object(&j);
		json_kv_string(&j, "name", c->rec->outputs[i].name);
		json_kv_string(&j, "sha256", c->rec->outputs[i].sha256);
		json_kv_uint(&j, "size", c->rec->outputs[i].size);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_key(&j, "packages");
	json_begin_array(&j);
	for (i = 0; i < c->rec->n_packages; i++) {
		json_begin_object(&j);
		json_kv_string(&j, "name", c->rec->packages[i].name);
		json_kv_string(&j, "version", c->rec->packages[i].version);
		json_kv_string(&j, "architecture", c->rec->packages[i].arch);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
}

/* Remove temporary files an interrupted build left in the output directory. */
static void clean_outdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp-")) {
			_cleanup_free_ char *p = path_join(dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
}

int pipeline_build(struct recipe *r, const struct stage_keys *keys, const struct build_opts *o,
		   struct build_result *ret)
{
	struct ctx c = { .r = r, .keys = keys, .o = o, .log_fd = -1 };
	struct strbuf err = STRBUF_INIT, manifest = STRBUF_INIT;
	_cleanup_free_ char *base_path = NULL, *root_path = NULL, *reg_path = NULL;
	_cleanup_free_ char *mpath = NULL, *mtmp = NULL, *id = NULL;
	struct registry *reg = NULL;
	struct build_result res = { 0 };
	char idbuf[64];
	int rr, base_hit, root_hit;

	c.epoch = source_date_epoch((int64_t)time(NULL));
	c.outdir = o->outdir ? xstrdup(o->outdir)
			     : xasprintf("out/%s-%s-%s", recipe_get_str(r, "image", "image"),
					 recipe_get_str(r, "version", "0"), r->profile);
	rr = mkdir_p(c.outdir, 0755);
	if (rr < 0) {
		rr = fail(&c, rr, "cannot create the output directory '%s': %s", c.outdir,
			  strerror(-rr));
		goto out;
	}
	clean_outdir(c.outdir);
	c.log_path = path_join(c.outdir, "build.log");
	c.log_fd = open(c.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0644);
	if (c.log_fd < 0) {
		rr = fail(&c, -errno, "cannot write the build log '%s': %s", c.log_path,
			  strerror(errno));
		goto out;
	}

	rr = cache_open(o->cache, &c.cache, &err);
	if (rr < 0) {
		rr = fail(&c, rr, "cache: %s", err.buf);
		goto out;
	}
	reg_path = o->registry ? xstrdup(o->registry) : path_join(cache_dir(c.cache), "registry.db");
	rr = registry_open(reg_path, &reg, &err);
	if (rr < 0) {
		rr = fail(&c, rr, "registry: %s", err.buf);
		goto out;
	}

	c.rec = registry_build_new();
	c.rec->created = (int64_t)time(NULL);
	registry_new_id(c.rec->created, idbuf);
	c.rec->id = xstrdup(idbuf);
	c.rec->image = xstrdup(recipe_get_str(r, "image", ""));
	c.rec->version = xstrdup(recipe_get_str(r, "version", ""));
	c.rec->profile = xstrdup(r->profile);
	c.rec->key_base = xstrdup(keys->base);
	c.rec->key_rootfs = xstrdup(keys->rootfs);
	c.rec->outdir = realpath(c.outdir, NULL);
	{
		struct strbuf in = STRBUF_INIT;
		recipe_print_json(r, keys, &in, false);
		c.rec->inputs = strbuf_detach(&in);
	}
	step(&c, "build %s: %s %s (profile %s) into %s", c.rec->id, c.rec->image,
	     c.rec->version, r->profile, c.outdir);

	rr = lock_stage(&c, "base", keys->base);
	if (rr < 0)
		goto out;
	base_hit = base_stage(&c, &base_path);
	cache_unlock(c.cache, keys->base);
	if (base_hit < 0) {
		rr = base_hit;
		goto out;
	}
	rr = lock_stage(&c, "rootfs", keys->rootfs);
	if (rr < 0)
		goto out;
	root_hit = rootfs_stage(&c, base_path, &root_path);
	cache_unlock(c.cache, keys->rootfs);
	if (root_hit < 0) {
		rr = root_hit;
		goto out;
	}
	rr = publish(&c, "root.ext4", root_path);
	if (rr < 0)
		goto out;
	if (recipe_get(r, "disk")) {
		_cleanup_free_ char *disk_path = NULL;
		int disk_hit;

		rr = lock_stage(&c, "disk", keys->disk);
		if (rr < 0)
			goto out;
		disk_hit = disk_stage(&c, root_path, &disk_path);
		cache_unlock(c.cache, keys->disk);
		if (disk_hit < 0) {
			rr = disk_hit;
			goto out;
		}
		c.rec->key_disk = xstrdup(keys->disk);
		rr = publish(&c, "disk.raw", disk_path);
		if (rr < 0)
			goto out;
	}

	write_manifest(&c, &manifest);
	mpath = path_join(c.outdir, "manifest.json");
	rr = write_file_atomic(mpath, manifest.buf, manifest.len, 0644);
	if (rr < 0) {
		rr = fail(&c, rr, "cannot write '%s': %s", mpath, strerror(-rr));
		goto out;
	}
	{
		char sha[SHA256_HEX_LEN];
		sha256_hex(manifest.buf, manifest.len, sha);
		registry_build_add_output(c.rec, "manifest.json", sha, manifest.len);
	}

	rr = registry_add(reg, c.rec, &id, &err);
	if (rr < 0) {
		rr = fail(&c, rr, "registry: %s", err.buf);
		goto out;
	}
	step(&c, "build %s: done in %ld s: %s/root.ext4 (%zu packages)", id,
	     (long)(time(NULL) - (time_t)c.rec->created), c.outdir, c.rec->n_packages);
	res.id = TAKE_PTR(id);
	res.outdir = TAKE_PTR(c.outdir);
	res.base_cached = base_hit > 0;
	res.rootfs_cached = root_hit > 0;
	*ret = res;
	rr = 0;
out:
	registry_close(reg);
	if (c.cache)
		cache_close(c.cache);
	if (c.rec)
		registry_build_free(c.rec);
	if (c.log_fd >= 0)
		close(c.log_fd);
	free(c.log_path);
	free(c.outdir);
	strbuf_release(&err);
	strbuf_release(&manifest);
	return rr;
}

void build_result_release(struct build_result *res)
{
	free(res->id);
	free(res->outdir);
	memset(res, 0, sizeof(*res));
}
