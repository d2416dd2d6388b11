/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_AGENT_H
#define IMGFORGE_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"
#include "update/slot.h"

/*
 * imgforge-update, the update agent on the device (docs/update.md, "On the
 * device"). It links libcurl, libcrypto and libzstd only: src/core,
 * src/net/fetch and src/update, nothing of the host side.
 *
 * Files, each path overridable through the environment (tests, recovery):
 *   /etc/imgforge/release       IMAGE=, VERSION=, BUILD_ID= of the running
 *                               image, written by the build
 *                               (IMGFORGE_UPDATE_RELEASE)
 *   /etc/imgforge/update.conf   the recipe's update: section
 *                               (IMGFORGE_UPDATE_CONF)
 *   /data/imgforge/update/      state: the last install, the last attempt,
 *                               the lock (IMGFORGE_UPDATE_STATE)
 *   /usr/lib/imgforge/update.d/ pre-install.d/ and post-install.d/ hooks
 *                               (IMGFORGE_UPDATE_HOOKS)
 * and those of update/slot.h for the ESP, the command line and the slots.
 */

/* KEY=VALUE lines, as in an os-release file: the agent's configuration and state. */
struct kv {
	char **keys, **values;
	size_t n, alloc;
};

#define KV_INIT { NULL, NULL, 0, 0 }

void kv_release(struct kv *kv);
/* Read path; a missing file is an empty set (returns 0). Values may be "quoted". */
int kv_load(const char *path, struct kv *kv, struct strbuf *err);
const char *kv_get(const struct kv *kv, const char *key);
void kv_set(struct kv *kv, const char *key, const char *value);
void kv_setf(struct kv *kv, const char *key, const char *fmt, ...) _printf_(3, 4);
/* Write durably: temp file, fsync, rename, directory fsync. */
int kv_store(const char *path, const struct kv *kv, struct strbuf *err);

/* The agent's view of the device. */
struct agent {
	char *release_path, *conf_path, *state_dir, *hooks_dir;
	struct kv release, conf;
	const char *compatible; /* update.conf COMPATIBLE, else release IMAGE */
	const char *version;	/* release VERSION (NULL if unknown) */
	const char *keyring;	/* update.conf KEYRING, else /etc/imgforge/keyring.d */
	int lock_fd;
};

int agent_init(struct agent *a, struct strbuf *err);
void agent_release(struct agent *a);
/* Take the state directory's lock (one install, mark-good or rollback at a time). */
int agent_lock(struct agent *a, struct strbuf *err);
/* The state files: "last-install" and "last-attempt" in the state directory. */
char *agent_state_path(const struct agent *a, const char *name);

/*
 * The booted slot, the ESP's directory (mounted if need be) and its
 * environment, the maximum of tries: what every command needs. With
 * reset_damaged (mark-good: the running slot works), two damaged blocks
 * give a new environment with the running slot first and the other bad.
 */
struct slots {
	char booted;
	bool fallback;
	char *dir;
	struct slot_env env;
	unsigned max_tries;
};
int slots_load(struct slots *s, bool reset_damaged, struct strbuf *err);
void slots_release(struct slots *s);

/* Now, in seconds since the epoch, for the state files. */
int64_t agent_now(void);

/*
 * Run the hooks of hooks_dir/<phase>.d in run-parts order (names of
 * [A-Za-z0-9_-], executable regular files) with env added; the first that
 * fails stops them with a message in err.
 */
int agent_run_hooks(const struct agent *a, const char *phase, char *const env[],
		    struct strbuf *err);

/* Reboot through systemd. */
int agent_reboot(void);

/* The commands. */
int cmd_status(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_mark_good(int argc, char **argv);
int cmd_health_failed(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_check(int argc, char **argv);

/*
 * Install from src (a path or a URL). want_sha256/want_size (may be
 * NULL/0): what the channel says the bundle file is (a delta download
 * checks the size only: it never has the whole file). full: no delta
 * download. Prints progress; one error line on failure. Returns 0 or -1.
 */
int agent_install(struct agent *a, const char *src, const uint8_t *want_sha256,
		  uint64_t want_size, bool allow_downgrade, bool force, bool reboot, bool full);

#endif
