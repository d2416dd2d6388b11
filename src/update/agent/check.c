/* SPDX-License-Identifier: MIT */
/*
 * imgforge-update check: poll the channel. The channel index
 * (channels.json, with its detached signature channels.json.sig beside it,
 * docs/update.md) is fetched from the URL of update.conf's CHANNEL_URL,
 * checked against the keyring, and the entry of CHANNEL (default "stable")
 * compared with the running image. With --install, a newer version is
 * installed: the bundle must also be the very file the index names (its
 * size and SHA-256).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/options.h"
#include "core/util.h"
#include "net/fetch.h"
#include "update/agent/agent.h"
#include "update/channel.h"
#include "update/sign.h"

/* A bundle URL of the index, relative to the index's own URL unless absolute. */
static char *resolve_url(const char *index_url, const char *url)
{
	const char *slash;

	if (strstr(url, "://") || url[0] == '/')
		return xstrdup(url);
	slash = strrchr(index_url, '/');
	if (!slash)
		return xstrdup(url);
	return xasprintf("%.*s/%s", (int)(slash - index_url), index_url, url);
}

static void record_check(struct agent *a, const char *result, const char *version,
			 const char *message)
{
	_cleanup_free_ char *path = agent_state_path(a, "last-check");
	struct strbuf err = STRBUF_INIT;
	struct kv kv = KV_INIT;

	if (mkdir_p(a->state_dir, 0755) < 0)
		goto out;
	kv_set(&kv, "RESULT", result);
	kv_set(&kv, "VERSION", version ? version : "");
	kv_set(&kv, "MESSAGE", message);
	kv_setf(&kv, "TIME", "%" PRId64, agent_now());
	if (kv_store(path, &kv, &err) < 0)
		warning("%s", err.buf);
out:
	kv_release(&kv);
	strbuf_release(&err);
}

int cmd_check(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update check [--install] [--reboot] [--allow-downgrade]\n"
		"\n"
		"Fetch the signed channel index named by /etc/imgforge/update.conf and say whether\n"
		"it offers a newer version than the running one; with --install, install it.\n"
		"imgforge-update-check.timer runs this on the recipe's schedule.\n";
	bool install = false, reboot = false, downgrade = false;
	const char *url_opt = NULL, *channel_opt = NULL;
	const struct opt opts[] = {
		OPT_FLAG(0, "install", &install, "install the offered version when it is newer"),
		OPT_FLAG(0, "reboot", &reboot, "reboot into it once installed"),
		OPT_FLAG(0, "allow-downgrade", &downgrade,
			 "install the offered version also when it is older"),
		OPT_STRING(0, "url", &url_opt, "URL", "the channel index (default: CHANNEL_URL)"),
		OPT_STRING(0, "channel", &channel_opt, "NAME",
			   "the channel (default: CHANNEL, else stable)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = { "check", usage, opts, NULL, false };
	struct strbuf err = STRBUF_INIT, msg = STRBUF_INIT;
	struct channel_entry e = { 0 };
	_cleanup_free_ char *index_url = NULL, *sig_url = NULL, *json = NULL, *sig = NULL,
			    *bundle_url = NULL;
	size_t json_len = 0, sig_len = 0;
	const char *base, *channel;
	char cerr[1024] = "";
	struct agent a;
	int n, ret = 1, cmp;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 0) {
		error("check takes no operand; see 'imgforge-update check --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	base = url_opt ? url_opt : kv_get(&a.conf, "CHANNEL_URL");
	channel = channel_opt ? channel_opt : kv_get(&a.conf, "CHANNEL");
	if (!channel || !*channel)
		channel = "stable";
	if (!base || !*base) {
		error("no channel: '%s' has no CHANNEL_URL= (the recipe's update.channel); "
		      "or give --url",
		      a.conf_path);
		goto out;
	}
	if (!a.compatible || !a.version) {
		error("the running image's name or version is unknown (IMAGE= and VERSION= in "
		      "'%s')",
		      a.release_path);
		goto out;
	}
	index_url = str_endswith(base, ".json") ? xstrdup(base)
						: xasprintf("%s%schannels.json", base,
							    str_endswith(base, "/") ? "" : "/");
	sig_url = xasprintf("%s.sig", index_url);
	if (fetch_memory(index_url, 4u << 20, NULL, &json, &json_len, &err) < 0 ||
	    fetch_memory(sig_url, 64u << 10, NULL, &sig, &sig_len, &err) < 0) {
		error("%s", err.buf);
		record_check(&a, "error", NULL, err.buf);
		goto out;
	}
	if (sig_verify_detached(json, json_len, sig, sig_len, a.keyring, cerr, sizeof(cerr)) < 0 ||
	    channel_parse(json, json_len, channel, &e, cerr, sizeof(cerr)) < 0) {
		error("channel index '%s': %s", index_url, cerr);
		record_check(&a, "error", NULL, cerr);
		goto out;
	}
	if (strcmp(e.compatible, a.compatible)) {
		strbuf_addf(&msg,
			    "channel '%s' of '%s' offers %s, not %s: this device is on the wrong "
			    "channel (update.channel in its recipe)",
			    channel, index_url, e.compatible, a.compatible);
		error("%s", msg.buf);
		record_check(&a, "error", e.version, msg.buf);
		goto out;
	}
	cmp = strverscmp(e.version, a.version);
	if (cmp == 0 || (cmp < 0 && !downgrade)) {
		strbuf_addf(&msg, "up to date: %s %s (channel '%s' offers %s)", a.compatible,
			    a.version, channel, e.version);
		printf("%s\n", msg.buf);
		record_check(&a, "up-to-date", e.version, msg.buf);
		ret = 0;
		goto out;
	}
	/*
	 * A version that was installed here and rolled back (its health check
	 * failed, or it did not boot) is not installed again by the timer: it
	 * would fail the same way at every check. A newer version in the channel,
	 * or `imgforge-update install URL`, moves on.
	 */
	if (install) {
		_cleanup_free_ char *path = agent_state_path(&a, "last-install");
		struct kv last = KV_INIT;
		struct strbuf lerr = STRBUF_INIT;
		const char *res, *ver;

		if (kv_load(path, &last, &lerr) == 0 && (res = kv_get(&last, "RESULT")) &&
		    (ver = kv_get(&last, "VERSION")) && !strcmp(res, "rolled-back") &&
		    !strcmp(ver, e.version)) {
			const char *why = kv_get(&last, "REASON");

			strbuf_addf(&msg,
				    "not installing %s %s from channel '%s': it was rolled back on "
				    "this device (%s); publish a newer version, or install it by "
				    "hand with 'imgforge-update install'",
				    a.compatible, e.version, channel, why && *why ? why : "no reason recorded");
			printf("%s\n", msg.buf);
			record_check(&a, "rolled-back", e.version, msg.buf);
			kv_release(&last);
			strbuf_release(&lerr);
			ret = 0;
			goto out;
		}
		kv_release(&last);
		strbuf_release(&lerr);
	}
	strbuf_addf(&msg, "update available: %s %s (running %s) from channel '%s'", a.compatible,
		    e.version, a.version, channel);
	printf("%s\n", msg.buf);
	fflush(stdout);
	record_check(&a, "available", e.version, msg.buf);
	if (!install) {
		ret = 0;
		goto out;
	}
	bundle_url = resolve_url(index_url, e.url);
	ret = agent_install(&a, bundle_url, e.sha256, e.size, downgrade, false, reboot, false) < 0
		      ? 1
		      : 0;
out:
	channel_entry_release(&e);
	agent_release(&a);
	strbuf_release(&err);
	strbuf_release(&msg);
	return ret;
}
