/* SPDX-License-Identifier: MIT */
/* manifest.json: what was built, from which stage keys, with which packages. */
#include "build/archive.h"
#include "build/stage.h"
#include "core/json.h"
#include "store/registry.h"

void build_manifest(struct build_ctx *c, struct strbuf *out)
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
	if (c->archive) {
		/* What the base was built from: see when an archive moved on since. */
		json_key(&j, "archive");
		json_begin_array(&j);
		for (i = 0; i < c->archive->n; i++) {
			const struct archive_source *a = &c->archive->v[i];
			json_begin_object(&j);
			json_kv_string(&j, "uri", a->uri);
			json_kv_string(&j, "suite", a->suite);
			json_kv_string(&j, "components", a->components);
			json_kv_string(&j, "inrelease_sha256", a->state);
			json_kv_int(&j, "checked", a->checked);
			json_end_object(&j);
		}
		json_end_array(&j);
	}
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
