/* SPDX-License-Identifier: MIT */
/*
 * The publications table of the registry: where each build was published
 * (imgforge publish). Beside registry.c, over the same database.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "store/db.h"
#include "store/registry-internal.h"
#include "store/registry.h"

int registry_add_publication(struct registry *r, const struct registry_publication *p,
			     struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int k;

	if (r->readonly) {
		strbuf_addf(err, "registry '%s' was opened read-only", db_path(r->db));
		return -EROFS;
	}
	k = db_begin(r->db, err);
	if (k < 0)
		return k;
	k = db_prepare(r->db, "SELECT 1 FROM builds WHERE id = ?1", &s, err);
	if (k < 0)
		goto fail;
	db_bind_text(s, 1, p->build_id);
	k = db_step(s, err);
	if (k < 0)
		goto fail;
	if (k == 0) {
		strbuf_addf(err, "no build '%s' in the registry", p->build_id);
		k = -ENOENT;
		goto fail;
	}
	db_finalize(TAKE_PTR(s));
	k = db_prepare(r->db,
		       "INSERT OR REPLACE INTO publications (build_id, target, region, image_id, "
		       "name, location, format, sha256, public, created) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
		       &s, err);
	if (k < 0)
		goto fail;
	db_bind_text(s, 1, p->build_id);
	db_bind_text(s, 2, p->target);
	db_bind_text(s, 3, p->region ? p->region : "");
	db_bind_text(s, 4, p->image_id);
	db_bind_text(s, 5, p->name);
	db_bind_text(s, 6, p->location);
	db_bind_text(s, 7, p->format);
	db_bind_text(s, 8, p->sha256);
	db_bind_int64(s, 9, p->public_image);
	db_bind_int64(s, 10, p->created ? p->created : (int64_t)time(NULL));
	k = db_step_done(s, err);
	if (k < 0)
		goto fail;
	db_finalize(TAKE_PTR(s));
	return db_commit(r->db, err);
fail:
	db_finalize(TAKE_PTR(s));
	db_rollback(r->db);
	return k;
}

int registry_list_publications(struct registry *r, const char *build_id,
			       struct registry_publication **ret, size_t *ret_n, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	struct registry_publication *v = NULL;
	size_t n = 0;
	int k;

	*ret = NULL;
	*ret_n = 0;
	if (r->version < 4) /* no publications yet */
		return 0;
	k = db_prepare(r->db,
		       "SELECT build_id, target, region, image_id, name, location, format, sha256, "
		       "public, created FROM publications WHERE ?1 IS NULL OR build_id = ?1 "
		       "ORDER BY created, build_id, target, region, image_id",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, build_id);
	while ((k = db_step(s, err)) > 0) {
		struct registry_publication *p;

		v = xrealloc(v, (n + 1) * sizeof(*v));
		p = &v[n++];
		memset(p, 0, sizeof(*p));
		p->build_id = db_column_strdup(s, 0);
		p->target = db_column_strdup(s, 1);
		p->region = db_column_strdup(s, 2);
		p->image_id = db_column_strdup(s, 3);
		p->name = db_column_strdup(s, 4);
		p->location = db_column_strdup(s, 5);
		p->format = db_column_strdup(s, 6);
		snprintf(p->sha256, sizeof(p->sha256), "%s",
			 db_column_text(s, 7) ? db_column_text(s, 7) : "");
		p->public_image = db_column_int64(s, 8) != 0;
		p->created = db_column_int64(s, 9);
	}
	if (k < 0) {
		registry_publications_free(v, n);
		return k;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void registry_publications_free(struct registry_publication *p, size_t n)
{
	size_t i;

	for (i = 0; p && i < n; i++) {
		free(p[i].build_id);
		free(p[i].target);
		free(p[i].region);
		free(p[i].image_id);
		free(p[i].name);
		free(p[i].location);
		free(p[i].format);
	}
	free(p);
}
