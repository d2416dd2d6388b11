/* SPDX-License-Identifier: MIT */
/*
 * imgforge-update status, mark-good, health-failed and rollback: what the
 * slots are, and the changes to them that are not an install.
 *
 * A rollback by GRUB leaves no trace but the counters: the new slot's
 * <slot>_TRIES reached the maximum, and the old slot runs again. status
 * reads it from there, with the install record (which slot, which version)
 * and the health record the health check left when it failed, and the
 * first mark-good after it writes the outcome into the install record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/options.h"
#include "core/util.h"
#include "update/agent/agent.h"
#include "update/slot.h"

static void load_state(const struct agent *a, const char *name, struct kv *kv)
{
	_cleanup_free_ char *path = agent_state_path(a, name);
	struct strbuf err = STRBUF_INIT;

	if (kv_load(path, kv, &err) < 0)
		warning("%s", err.buf);
	strbuf_release(&err);
}

static const char *get(const struct kv *kv, const char *key)
{
	const char *v = kv_get(kv, key);

	return v ? v : "";
}

static char state_slot(const struct kv *kv, const char *key)
{
	const char *v = get(kv, key);

	return (!strcmp(v, "A") || !strcmp(v, "B")) ? v[0] : 0;
}

static bool order_first(const struct slots *s, char slot)
{
	const char *o = slot_env_get(&s->env, "ORDER");

	o = o ? o + strspn(o, " ") : "A";
	return *o == slot;
}

/*
 * An install whose record still says "installing" although the switch
 * (step 6) was done: the power went, or the agent was killed, between the
 * boot variables' write and the record's. The boot variables and the
 * running image say which: the slot runs (not as a last resort) the
 * version the record names, or it is first in ORDER with its counter at
 * 0, which only the switch sets for a slot being installed. Read as
 * "installed" then (in memory; mark-good writes the outcome). Without
 * this, status said "interrupted ... slot A boots" with slot B running.
 */
static void settle_installing(const struct agent *a, const struct slots *s, struct kv *inst)
{
	char slot = state_slot(inst, "SLOT");
	const char *v = get(inst, "VERSION");

	if (strcmp(get(inst, "RESULT"), "installing") || !slot)
		return;
	if ((slot == s->booted && !s->fallback && a->version && *v && !strcmp(v, a->version)) ||
	    (slot != s->booted && order_first(s, slot) && slot_tries(&s->env, slot) == 0))
		kv_set(inst, "RESULT", "installed");
}

/*
 * Why the last installed slot is not running although it was installed:
 * into *why, or false when it was not rolled back.
 */
static bool rolled_back(const struct slots *s, const struct kv *inst, const struct kv *health,
			struct strbuf *why)
{
	char slot = state_slot(inst, "SLOT");
	const char *result = get(inst, "RESULT");

	if (!strcmp(result, "rolled-back")) {
		strbuf_addf(why, "rolled back from %c: %s", slot, get(inst, "REASON"));
		return true;
	}
	if (strcmp(result, "installed") || !slot || slot == s->booted)
		return false;
	if (slot_tries(&s->env, slot) < s->max_tries) {
		if (order_first(s, slot))
			return false; /* not booted yet */
		strbuf_addf(why, "rolled back from %c: the boot order was changed by hand", slot);
		return true;
	}
	strbuf_addf(why, "rolled back from %c: ", slot);
	if (state_slot(health, "SLOT") == slot && !strcmp(get(health, "RESULT"), "failed"))
		strbuf_addf(why, "health check failed (%s); ", get(health, "REASON"));
	else
		strbuf_addf(why, "it never passed its health check (no boot of it got that far); ");
	strbuf_addf(why, "tries exhausted (%u boots)", s->max_tries);
	return true;
}

/* One line on the last install, for people. */
static void describe_install(const struct slots *s, const struct kv *inst, const struct kv *health,
			     struct strbuf *out)
{
	const char *result = get(inst, "RESULT");
	char slot = state_slot(inst, "SLOT");
	unsigned tries = slot ? slot_tries(&s->env, slot) : 0;

	if (!*result) {
		strbuf_addstr(out, "none");
		return;
	}
	strbuf_addf(out, "%s into slot %c: ", *get(inst, "VERSION") ? get(inst, "VERSION") : "?",
		    slot ? slot : '?');
	if (!slot) {
		/* A record without its slot: say what it holds, never a slot it does not name. */
		strbuf_addf(out,
			    "%s (the record names no slot: it is damaged; the boot order above is "
			    "what GRUB follows)",
			    result);
		return;
	}
	if (rolled_back(s, inst, health, out))
		return;
	if (!strcmp(result, "installing") && tries < s->max_tries) {
		/* Cut between the record and the first boot variables' write. */
		strbuf_addf(out,
			    "interrupted: the install did not finish, before it wrote to slot %c "
			    "(which keeps what it held); slot %c boots",
			    slot, slot_other(slot));
	} else if (!strcmp(result, "installing")) {
		strbuf_addf(out,
			    "interrupted: the install did not finish; slot %c is marked bad and "
			    "slot %c boots",
			    slot, slot_other(slot));
	} else if (!strcmp(result, "failed")) {
		strbuf_addf(out, "failed: %s", get(inst, "REASON"));
	} else if (!strcmp(result, "good")) {
		strbuf_addstr(out, "good (passed its health check)");
	} else if (!strcmp(result, "installed") && slot == s->booted) {
		strbuf_addf(out, "running, waiting for its health check (boot %u of %u)", tries,
			    s->max_tries);
	} else if (!strcmp(result, "installed")) {
		strbuf_addstr(out, "installed, boots at the next reboot");
	} else {
		strbuf_addstr(out, result);
	}
}

static const char *slot_state(const struct slots *s, char slot, char *buf, size_t len)
{
	unsigned tries = slot_tries(&s->env, slot);

	if (tries == 0)
		snprintf(buf, len, "good");
	else if (tries >= s->max_tries)
		snprintf(buf, len, "bad");
	else
		snprintf(buf, len, "booted %u of %u times without being marked good", tries,
			 s->max_tries);
	return buf;
}

static void json_kv_state(struct json *j, const char *key, const struct kv *kv)
{
	size_t i;

	json_key(j, key);
	if (!kv->n) {
		json_null(j);
		return;
	}
	json_begin_object(j);
	for (i = 0; i < kv->n; i++) {
		_cleanup_free_ char *k = xstrdup(kv->keys[i]);
		char *p;

		for (p = k; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		json_kv_string(j, k, kv->values[i]);
	}
	json_end_object(j);
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update status [--json]\n"
		"\n"
		"Which slot runs, which slots are good, the boot order, and what became of the\n"
		"last update (installed, running, good, or rolled back and why).\n";
	bool as_json = false;
	const struct opt opts[] = {
		OPT_FLAG(0, "json", &as_json, "print JSON"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {"status", usage, opts, NULL, false};
	struct strbuf err = STRBUF_INIT, line = STRBUF_INIT, why = STRBUF_INIT;
	struct kv inst = KV_INIT, attempt = KV_INIT, health = KV_INIT, check = KV_INIT;
	struct slots s = {0};
	struct agent a;
	char buf[128];
	const char *order;
	bool rb;
	int n, ret = 1;
	char slot;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 0) {
		error("status takes no operand; see 'imgforge-update status --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0 || slots_load(&s, false, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	load_state(&a, "last-install", &inst);
	settle_installing(&a, &s, &inst);
	load_state(&a, "last-attempt", &attempt);
	load_state(&a, "health", &health);
	load_state(&a, "last-check", &check);
	order = slot_env_get(&s.env, "ORDER");
	order = order ? order : "A B";
	describe_install(&s, &inst, &health, &line);
	rb = rolled_back(&s, &inst, &health, &why);

	if (as_json) {
		struct strbuf out = STRBUF_INIT;
		struct json j;

		json_init(&j, &out, true);
		json_begin_object(&j);
		json_kv_string(&j, "booted", (char[]){s.booted, '\0'});
		json_kv_bool(&j, "fallback", s.fallback);
		json_key(&j, "compatible");
		a.compatible ? json_string(&j, a.compatible) : json_null(&j);
		json_key(&j, "version");
		a.version ? json_string(&j, a.version) : json_null(&j);
		json_kv_string(&j, "order", order);
		json_kv_uint(&j, "max_tries", s.max_tries);
		json_key(&j, "slots");
		json_begin_object(&j);
		for (slot = 'A'; slot <= 'B'; slot++) {
			unsigned t = slot_tries(&s.env, slot);

			json_key(&j, (char[]){slot, '\0'});
			json_begin_object(&j);
			json_kv_string(&j, "device", slot_device(slot));
			json_kv_bool(&j, "running", slot == s.booted);
			json_key(&j, "tries");
			t == UINT_MAX ? json_null(&j) : json_uint(&j, t);
			json_kv_bool(&j, "good", t == 0);
			json_kv_string(&j, "state", slot_state(&s, slot, buf, sizeof(buf)));
			json_end_object(&j);
		}
		json_end_object(&j);
		json_kv_string(&j, "last_update", line.buf);
		json_key(&j, "rolled_back");
		if (rb) {
			json_begin_object(&j);
			json_kv_string(&j, "from", (char[]){state_slot(&inst, "SLOT"), '\0'});
			json_kv_string(&j, "reason", why.buf);
			json_end_object(&j);
		} else {
			json_null(&j);
		}
		json_kv_state(&j, "last_install", &inst);
		json_kv_state(&j, "last_attempt", &attempt);
		json_kv_state(&j, "health", &health);
		json_kv_state(&j, "last_check", &check);
		json_end_object(&j);
		fputs(out.buf, stdout);
		if (!str_endswith(out.buf, "\n"))
			putchar('\n');
		strbuf_release(&out);
	} else {
		printf("image:       %s %s\n", a.compatible ? a.compatible : "(unknown)",
		       a.version ? a.version : "(unknown version)");
		printf("booted:      slot %c%s\n", s.booted,
		       s.fallback ? " (as a last resort: no slot had tries left)" : "");
		printf("boot order:  %s\n", order);
		for (slot = 'A'; slot <= 'B'; slot++)
			printf("slot %c:      %s%s (%s)\n", slot,
			       slot_state(&s, slot, buf, sizeof(buf)),
			       slot == s.booted ? ", running" : "", slot_device(slot));
		printf("last update: %s\n", line.buf);
		if (*get(&inst, "DOWNLOADED"))
			printf("downloaded:  %s of the bundle's %s bytes (%s)\n",
			       get(&inst, "DOWNLOADED"), get(&inst, "BUNDLE_SIZE"),
			       !strcmp(get(&inst, "METHOD"), "delta")
				       ? "delta: what the slots lacked"
				       : "the whole bundle, twice");
		if (*get(&attempt, "RESULT") && strcmp(get(&attempt, "RESULT"), "installed"))
			printf("last try:    %s: %s\n", get(&attempt, "RESULT"),
			       get(&attempt, "REASON"));
		if (*get(&check, "RESULT"))
			printf("last check:  %s\n", get(&check, "MESSAGE"));
	}
	ret = 0;
out:
	kv_release(&inst);
	kv_release(&attempt);
	kv_release(&health);
	kv_release(&check);
	slots_release(&s);
	agent_release(&a);
	strbuf_release(&err);
	strbuf_release(&line);
	strbuf_release(&why);
	return ret;
}

static int store_state(const struct agent *a, const char *name, const struct kv *kv)
{
	_cleanup_free_ char *path = agent_state_path(a, name);
	struct strbuf err = STRBUF_INIT;
	int r = kv_store(path, kv, &err);

	if (r < 0)
		warning("%s", err.buf);
	strbuf_release(&err);
	return r;
}

/*
 * After the booted slot was marked good: the install record learns what
 * became of the last install (good, or rolled back and why), before the
 * health record is overwritten by this boot's.
 */
static void settle_install(struct agent *a, const struct slots *s)
{
	struct kv inst = KV_INIT, health = KV_INIT;
	struct strbuf why = STRBUF_INIT;
	char slot;

	load_state(a, "last-install", &inst);
	settle_installing(a, s, &inst);
	load_state(a, "health", &health);
	slot = state_slot(&inst, "SLOT");
	if (!strcmp(get(&inst, "RESULT"), "installed") && slot) {
		if (slot == s->booted) {
			kv_set(&inst, "RESULT", "good");
			kv_set(&inst, "REASON", "");
			kv_setf(&inst, "GOOD_TIME", "%" PRId64, agent_now());
			store_state(a, "last-install", &inst);
		} else if (rolled_back(s, &inst, &health, &why)) {
			const char *reason = strchr(why.buf, ':');

			kv_set(&inst, "RESULT", "rolled-back");
			kv_set(&inst, "REASON", reason ? reason + 2 : why.buf);
			kv_setf(&inst, "ROLLBACK_TIME", "%" PRId64, agent_now());
			store_state(a, "last-install", &inst);
			warning("%s", why.buf);
		}
	}
	kv_release(&health);
	kv_setf(&health, "SLOT", "%c", s->booted);
	kv_set(&health, "RESULT", "passed");
	kv_set(&health, "REASON", "");
	kv_setf(&health, "TIME", "%" PRId64, agent_now());
	store_state(a, "health", &health);
	kv_release(&inst);
	kv_release(&health);
	strbuf_release(&why);
}

int cmd_mark_good(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update mark-good\n"
		"\n"
		"The running slot booted well and is healthy: reset its boot counter, so that "
		"GRUB\n"
		"keeps booting it. /usr/lib/imgforge/mark-good runs this once the health checks\n"
		"pass. Also records what became of the last update.\n";
	const struct opt opts[] = {OPT_END()};
	const struct opt_cmd cmd = {"mark-good", usage, opts, NULL, false};
	struct strbuf err = STRBUF_INIT;
	struct slots s = {0};
	struct agent a;
	char name[] = "X_TRIES";
	int n, ret = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 0) {
		error("mark-good takes no operand; see 'imgforge-update mark-good --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0 || slots_load(&s, true, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	/* The boot counter first: /data may be missing, the slot must still be good. */
	name[0] = s.booted;
	slot_env_set(&s.env, name, "0");
	if (slot_env_store(s.dir, &s.env, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	printf("imgforge: slot %c marked good\n", s.booted);
	fflush(stdout);
	if (agent_lock(&a, &err) < 0)
		warning("%s; the update state is not recorded", err.buf);
	else
		settle_install(&a, &s);
	ret = 0;
out:
	slots_release(&s);
	agent_release(&a);
	strbuf_release(&err);
	return ret;
}

int cmd_health_failed(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update health-failed REASON\n"
		"\n"
		"Record that the running slot failed its health check, and why, for status to "
		"tell\n"
		"after GRUB has fallen back. /usr/lib/imgforge/mark-good runs this before it\n"
		"reboots; the boot counters are GRUB's and stay as they are.\n";
	const struct opt opts[] = {OPT_END()};
	const struct opt_cmd cmd = {"health-failed", usage, opts, NULL, false};
	struct strbuf err = STRBUF_INIT;
	struct kv health = KV_INIT;
	struct agent a;
	char slot;
	bool fallback;
	int n, ret = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("health-failed takes one REASON; see 'imgforge-update health-failed --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0 || slot_booted(&slot, &fallback, &err) < 0 ||
	    agent_lock(&a, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	kv_setf(&health, "SLOT", "%c", slot);
	kv_set(&health, "RESULT", "failed");
	kv_set(&health, "REASON", argv[0]);
	kv_setf(&health, "TIME", "%" PRId64, agent_now());
	if (store_state(&a, "health", &health) >= 0)
		ret = 0;
out:
	kv_release(&health);
	agent_release(&a);
	strbuf_release(&err);
	return ret;
}

int cmd_rollback(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update rollback [--reboot] [--force]\n"
		"\n"
		"Boot the other slot next: it goes first in the boot order with a fresh counter,\n"
		"and the running slot becomes its fallback. Refused when the other slot is marked\n"
		"bad or holds an unfinished install, unless --force.\n";
	bool reboot = false, force = false;
	const struct opt opts[] = {
		OPT_FLAG(0, "reboot", &reboot, "reboot into the other slot at once"),
		OPT_FLAG(0, "force", &force, "switch even to a slot marked bad"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {"rollback", usage, opts, NULL, false};
	struct strbuf err = STRBUF_INIT;
	struct kv inst = KV_INIT;
	struct slots s = {0};
	struct agent a;
	char order[4], name[] = "X_TRIES", other;
	const char *result;
	unsigned tries;
	int n, ret = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 0) {
		error("rollback takes no operand; see 'imgforge-update rollback --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0 || agent_lock(&a, &err) < 0 ||
	    slots_load(&s, false, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	other = slot_other(s.booted);
	load_state(&a, "last-install", &inst);
	result = get(&inst, "RESULT");
	if (!force && state_slot(&inst, "SLOT") == other &&
	    (!strcmp(result, "installing") || !strcmp(result, "failed"))) {
		error("slot %c holds an unfinished install (%s): it would not boot; install an "
		      "update into it, or use --force",
		      other, result);
		goto out;
	}
	name[0] = other;
	tries = slot_tries(&s.env, other);
	if (!force && tries >= s.max_tries) {
		error("slot %c is marked bad (%c_TRIES=%s, %u tries): it failed to boot, or never "
		      "held an image; use --force to boot it anyway",
		      other, other, slot_env_get(&s.env, name), s.max_tries);
		goto out;
	}
	snprintf(order, sizeof(order), "%c %c", other, s.booted);
	slot_env_set(&s.env, "ORDER", order);
	slot_env_set(&s.env, name, "0");
	if (slot_env_store(s.dir, &s.env, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	if (state_slot(&inst, "SLOT") == s.booted) {
		kv_set(&inst, "RESULT", "rolled-back");
		kv_setf(&inst, "REASON", "imgforge-update rollback to slot %c", other);
		kv_setf(&inst, "ROLLBACK_TIME", "%" PRId64, agent_now());
		store_state(&a, "last-install", &inst);
	}
	printf("slot %c boots next; slot %c is its fallback\n", other, s.booted);
	fflush(stdout);
	ret = reboot ? (agent_reboot() < 0) : 0;
out:
	kv_release(&inst);
	slots_release(&s);
	agent_release(&a);
	strbuf_release(&err);
	return ret;
}
