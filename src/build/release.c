/* SPDX-License-Identifier: MIT */
/*
 * What the image says about itself, for the update agent on the device
 * (docs/update.md): /etc/imgforge/release (every image), and from the
 * recipe's update: section /etc/imgforge/update.conf, the keyring in
 * /etc/imgforge/keyring.d/ and the channel poll timer.
 */
#include <errno.h>
#include <string.h>

#include "build/release.h"
#include "build/services.h"
#include "core/util.h"

#define RELEASE_DIR "/etc/imgforge"

static int add_file(struct build_ctx *c, struct tree *t, const char *path, const char *content,
		    const char *host_path, struct strbuf *err)
{
	int r = tree_add_file(t, path, content, content ? strlen(content) : 0, host_path, 0644, 0, 0,
			      c->epoch, err);

	if (r < 0)
		return build_fail(c, r, "cannot add '%s' to the image: %s", path, err->buf);
	return 0;
}

static int ensure_dir(struct build_ctx *c, struct tree *t, const char *path, struct strbuf *err)
{
	int r = tree_add_directory(t, path, 0755, 0, 0, c->epoch, err);

	if (r < 0)
		return build_fail(c, r, "cannot add '%s' to the image: %s", path, err->buf);
	return 0;
}

/*
 * The keyring: every certificate file under its own name (.crt added when
 * it ends in neither .crt nor .pem, the names the agent reads). A private
 * key is refused: the image would hand the signing key to every device.
 */
static int add_keyring(struct build_ctx *c, struct tree *t, const struct ynode *keyring,
		       struct strbuf *err)
{
	size_t i, j;
	int r;

	r = ensure_dir(c, t, RELEASE_DIR "/keyring.d", err);
	for (i = 0; keyring && i < keyring->n && r == 0; i++) {
		const struct ynode *k = keyring->v[i];
		const char *base = path_basename(k->abspath);
		_cleanup_free_ char *pem = NULL, *name = NULL, *dest = NULL;
		size_t len = 0;

		r = read_file(k->abspath, 1 << 20, &pem, &len);
		if (r < 0)
			return build_fail(c, r, "%s:%d:%d: update.keyring '%s': %s", k->pos.file,
					  k->pos.line, k->pos.col, k->str, strerror(-r));
		if (strstr(pem, "PRIVATE KEY"))
			return build_fail(c, -EINVAL,
					  "%s:%d:%d: update.keyring '%s' holds a private key: the "
					  "keyring takes the certificate (signing.crt), never the key",
					  k->pos.file, k->pos.line, k->pos.col, k->str);
		if (!strstr(pem, "-----BEGIN CERTIFICATE-----"))
			return build_fail(c, -EINVAL,
					  "%s:%d:%d: update.keyring '%s' holds no PEM certificate "
					  "(-----BEGIN CERTIFICATE-----): give the signing.crt of "
					  "'imgforge keygen'",
					  k->pos.file, k->pos.line, k->pos.col, k->str);
		name = str_endswith(base, ".crt") || str_endswith(base, ".pem")
			       ? xstrdup(base)
			       : xasprintf("%s.crt", base);
		for (j = 0; j < i; j++)
			if (!strcmp(path_basename(keyring->v[j]->abspath), base))
				return build_fail(c, -EEXIST,
						  "%s:%d:%d: update.keyring names two files called "
						  "'%s': rename one",
						  k->pos.file, k->pos.line, k->pos.col, base);
		dest = xasprintf(RELEASE_DIR "/keyring.d/%s", name);
		r = add_file(c, t, dest, NULL, k->abspath, err);
	}
	return r;
}

int release_apply(struct build_ctx *c, struct tree *t)
{
	const char *image = recipe_get_str(c->r, "image", "");
	const char *version = recipe_get_str(c->r, "version", "");
	const struct ynode *u = recipe_get(c->r, "update");
	struct strbuf err = STRBUF_INIT, sb = STRBUF_INIT;
	const struct ynode *channel, *timeout;
	int r;

	r = ensure_dir(c, t, RELEASE_DIR, &err);
	if (r < 0)
		goto out;
	strbuf_addf(&sb, "IMAGE=%s\nVERSION=%s\n", image, version);
	r = add_file(c, t, RELEASE_DIR "/release", sb.buf, NULL, &err);
	if (r < 0 || !u)
		goto out;

	channel = ynode_map_get(u, "channel");
	timeout = ynode_map_get(u, "health_timeout");
	strbuf_reset(&sb);
	strbuf_addf(&sb,
		    "# imgforge-update: from the recipe's update: section (docs/update.md).\n"
		    "COMPATIBLE=%s\nKEYRING=" RELEASE_DIR "/keyring.d\n",
		    recipe_get_str(c->r, "update.compatible", image));
	if (channel)
		strbuf_addf(&sb, "CHANNEL_URL=%s\nCHANNEL=%s\n", channel->str,
			    recipe_get_str(c->r, "update.channel_name", "stable"));
	if (timeout)
		strbuf_addf(&sb, "IMGFORGE_HEALTH_TIMEOUT=%s\n", timeout->str);
	r = add_file(c, t, RELEASE_DIR "/update.conf", sb.buf, NULL, &err);
	if (r == 0)
		r = add_keyring(c, t, ynode_map_get(u, "keyring"), &err);
	if (r < 0 || !channel)
		goto out;

	/* The poll: the timer of the overlay, on the recipe's schedule. */
	strbuf_reset(&sb);
	strbuf_addf(&sb,
		    "# From the recipe's update.schedule.\n[Timer]\nOnCalendar=\nOnCalendar=%s\n",
		    recipe_get_str(c->r, "update.schedule", "daily"));
	r = ensure_dir(c, t, "/etc/systemd/system/imgforge-update-check.timer.d", &err);
	if (r == 0)
		r = add_file(c, t, "/etc/systemd/system/imgforge-update-check.timer.d/schedule.conf",
			     sb.buf, NULL, &err);
	if (r == 0 && recipe_bool(ynode_map_get(u, "reboot"), false)) {
		r = ensure_dir(c, t, "/etc/systemd/system/imgforge-update-check.service.d", &err);
		if (r == 0)
			r = add_file(c, t,
				     "/etc/systemd/system/imgforge-update-check.service.d/reboot.conf",
				     "# From the recipe's update.reboot.\n[Service]\nExecStart=\n"
				     "ExecStart=/usr/sbin/imgforge-update check --install --reboot\n",
				     NULL, &err);
	}
	if (r == 0) {
		r = services_enable(t, "imgforge-update-check.timer", c->epoch, &err);
		if (r < 0)
			r = build_fail(c, r,
				       "update.channel: cannot enable imgforge-update-check.timer: %s "
				       "(it comes with ab-boot.yaml)",
				       err.buf);
	}
	if (r == 0)
		build_step(c, "rootfs: update channel %s, checked %s", channel->str,
			   recipe_get_str(c->r, "update.schedule", "daily"));
out:
	strbuf_release(&err);
	strbuf_release(&sb);
	return r;
}
