/* SPDX-License-Identifier: MIT */
/* What the agent's commands share: configuration, state files, slots, hooks. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/spawn.h"
#include "core/util.h"
#include "update/agent/agent.h"
#include "update/slot.h"

void kv_release(struct kv *kv)
{
	size_t i;

	for (i = 0; i < kv->n; i++) {
		free(kv->keys[i]);
		free(kv->values[i]);
	}
	free(kv->keys);
	free(kv->values);
	kv->keys = kv->values = NULL;
	kv->n = kv->alloc = 0;
}

const char *kv_get(const struct kv *kv, const char *key)
{
	size_t i;

	for (i = kv->n; i > 0; i--)
		if (!strcmp(kv->keys[i - 1], key))
			return kv->values[i - 1];
	return NULL;
}

void kv_set(struct kv *kv, const char *key, const char *value)
{
	size_t i, alloc2;

	for (i = 0; i < kv->n; i++) {
		if (!strcmp(kv->keys[i], key)) {
			free(kv->values[i]);
			kv->values[i] = xstrdup(value);
			return;
		}
	}
	alloc2 = kv->alloc;
	GROW(kv->keys, kv->alloc, kv->n + 1);
	GROW(kv->values, alloc2, kv->n + 1);
	kv->keys[kv->n] = xstrdup(key);
	kv->values[kv->n] = xstrdup(value);
	kv->n++;
}

void kv_setf(struct kv *kv, const char *key, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	kv_set(kv, key, strbuf_str(&sb));
	strbuf_release(&sb);
}

int kv_load(const char *path, struct kv *kv, struct strbuf *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, lineno = 0;
	char *line, *save = NULL;
	int r;

	r = read_file(path, 1 << 20, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-r));
		return r;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq, *v;
		size_t vl;

		lineno++;
		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq || eq == line) {
			strbuf_addf(err, "%s:%zu: not KEY=VALUE", path, lineno);
			return -EINVAL;
		}
		*eq = '\0';
		v = eq + 1;
		vl = strlen(v);
		if (vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') || (v[0] == '\'' && v[vl - 1] == '\''))) {
			v[vl - 1] = '\0';
			v++;
		}
		kv_set(kv, line, v);
	}
	return 0;
}

int kv_store(const char *path, const struct kv *kv, struct strbuf *err)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int r;

	for (i = 0; i < kv->n; i++) {
		/* One line each: a newline in a value (a message) becomes a blank. */
		_cleanup_free_ char *v = xstrdup(kv->values[i]);
		char *p;

		for (p = v; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		strbuf_addf(&sb, "%s=%s\n", kv->keys[i], v);
	}
	r = write_file_atomic(path, sb.buf ? sb.buf : "", sb.len, 0644);
	if (r >= 0)
		r = fsync_parent(path);
	if (r < 0)
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(-r));
	strbuf_release(&sb);
	return r;
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

int agent_init(struct agent *a, struct strbuf *err)
{
	const char *v;
	int r;

	memset(a, 0, sizeof(*a));
	a->lock_fd = -1;
	a->release_path = xstrdup(env_or("IMGFORGE_UPDATE_RELEASE", "/etc/imgforge/release"));
	a->conf_path = xstrdup(env_or("IMGFORGE_UPDATE_CONF", "/etc/imgforge/update.conf"));
	a->state_dir = xstrdup(env_or("IMGFORGE_UPDATE_STATE", "/data/imgforge/update"));
	a->hooks_dir = xstrdup(env_or("IMGFORGE_UPDATE_HOOKS", "/usr/lib/imgforge/update.d"));
	r = kv_load(a->release_path, &a->release, err);
	if (r < 0)
		return r;
	r = kv_load(a->conf_path, &a->conf, err);
	if (r < 0)
		return r;
	v = kv_get(&a->conf, "COMPATIBLE");
	a->compatible = v && *v ? v : kv_get(&a->release, "IMAGE");
	v = kv_get(&a->release, "VERSION");
	a->version = v && *v ? v : NULL;
	v = kv_get(&a->conf, "KEYRING");
	a->keyring = v && *v ? v : "/etc/imgforge/keyring.d";
	return 0;
}

void agent_release(struct agent *a)
{
	free(a->release_path);
	free(a->conf_path);
	free(a->state_dir);
	free(a->hooks_dir);
	kv_release(&a->release);
	kv_release(&a->conf);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	a->lock_fd = -1;
}

char *agent_state_path(const struct agent *a, const char *name)
{
	return path_join(a->state_dir, name);
}

int agent_lock(struct agent *a, struct strbuf *err)
{
	_cleanup_free_ char *path = agent_state_path(a, "lock");
	int r;

	r = mkdir_p(a->state_dir, 0755);
	/* A new state directory: its name is durable once its parent is synced. */
	if (r >= 0)
		r = fsync_parent(a->state_dir);
	if (r < 0) {
		strbuf_addf(err, "cannot create '%s': %s (is /data mounted?)", a->state_dir,
			    strerror(-r));
		return r;
	}
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (a->lock_fd < 0) {
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			strbuf_addf(err, "cannot lock '%s': %s", path, strerror(errno));
			return -errno;
		}
		info("another imgforge-update is running; waiting for it");
		if (flock(a->lock_fd, LOCK_EX) < 0) {
			strbuf_addf(err, "cannot lock '%s': %s", path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int slots_load(struct slots *s, bool reset_damaged, struct strbuf *err)
{
	int r;

	memset(s, 0, sizeof(*s));
	r = slot_booted(&s->booted, &s->fallback, err);
	if (r < 0)
		return r;
	r = slot_env_dir(true, &s->dir, err);
	if (r < 0)
		return r;
	s->max_tries = slot_max_tries(s->dir);
	r = slot_env_load(s->dir, &s->env, NULL, err);
	if (r == -EINVAL && reset_damaged) {
		/*
		 * Both blocks damaged, and the running slot is known to work: it
		 * becomes the default, the other one bad (nothing says what it holds).
		 */
		char order[4] = { s->booted, ' ', slot_other(s->booted), '\0' };
		char name[] = "X_TRIES", tries[16];

		warning("%s; writing them anew: slot %c first, slot %c marked bad", err->buf,
			s->booted, slot_other(s->booted));
		strbuf_reset(err);
		name[0] = slot_other(s->booted);
		snprintf(tries, sizeof(tries), "%u", s->max_tries);
		slot_env_set(&s->env, "ORDER", order);
		slot_env_set(&s->env, name, tries);
		return 0;
	}
	return r;
}

void slots_release(struct slots *s)
{
	free(s->dir);
	s->dir = NULL;
	slot_env_release(&s->env);
}

int64_t agent_now(void)
{
	return (int64_t)time(NULL);
}

static bool hook_name_ok(const char *name)
{
	const char *p;

	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return *name != '\0';
}

static void hook_line(const char *line, void *userdata)
{
	info("%s: %s", (const char *)userdata, line);
}

int agent_run_hooks(const struct agent *a, const char *phase, char *const env[],
		    struct strbuf *err)
{
	_cleanup_free_ char *sub = xasprintf("%s.d", phase);
	_cleanup_free_ char *dir = path_join(a->hooks_dir, sub);
	struct dirent **names = NULL;
	int n, i, r = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : (strbuf_addf(err, "cannot read '%s': %s", dir,
							   strerror(errno)),
					       -errno);
	for (i = 0; i < n; i++) {
		_cleanup_free_ char *path = path_join(dir, names[i]->d_name);
		struct spawn_status st;
		struct stat sb;
		char why[128];
		char *argv[] = { path, (char *)phase, NULL };
		struct spawn_opts o = { .log_fd = -1, .on_line = hook_line,
					.userdata = names[i]->d_name };
		size_t k;

		if (r < 0 || !hook_name_ok(names[i]->d_name) || stat(path, &sb) < 0 ||
		    !S_ISREG(sb.st_mode) || access(path, X_OK) < 0)
			continue;
		for (k = 0; env && env[k]; k++) {
			_cleanup_free_ char *kv = xstrdup(env[k]);
			char *eq = strchr(kv, '=');

			if (eq) {
				*eq = '\0';
				setenv(kv, eq + 1, 1);
			}
		}
		info("running %s hook %s", phase, path);
		r = spawn_run(argv, &o, &st);
		if (r < 0) {
			strbuf_addf(err, "cannot run the %s hook '%s': %s", phase, path,
				    strerror(-r));
		} else if (!spawn_status_ok(&st)) {
			strbuf_addf(err, "the %s hook '%s' %s", phase, path,
				    spawn_status_describe(&st, why, sizeof(why)));
			r = -EIO;
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int agent_reboot(void)
{
	char *argv[] = { (char *)"systemctl", (char *)"reboot", NULL };
	struct spawn_opts o = { .log_fd = -1 };
	struct spawn_status st;
	int r;

	info("rebooting");
	r = spawn_run(argv, &o, &st);
	if (r < 0)
		return error_errno(r, "cannot run 'systemctl reboot': %s", strerror(-r));
	if (!spawn_status_ok(&st))
		return error("'systemctl reboot' failed; reboot by hand to start the new slot");
	return 0;
}
