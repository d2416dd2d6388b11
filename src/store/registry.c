/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "store/db.h"
#include "store/registry-internal.h"
#include "store/registry.h"
#include "core/util.h"

/*
 * The registry schema, in one place. Migration i takes a database from
 * user_version i to i + 1; append, never edit (docs/registry.md).
 */
static const struct db_migration registry_schema[] = {
	/* 1: builds with their outputs and packages. */
	{"CREATE TABLE builds ("
	 "  id TEXT PRIMARY KEY,"
	 "  image TEXT NOT NULL,"
	 "  version TEXT NOT NULL,"
	 "  profile TEXT,"
	 "  created INTEGER NOT NULL,"
	 "  key_base TEXT,"
	 "  key_rootfs TEXT,"
	 "  key_disk TEXT,"
	 "  inputs TEXT"
	 ");"
	 "CREATE TABLE outputs ("
	 "  build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	 "  name TEXT NOT NULL,"
	 "  sha256 TEXT NOT NULL,"
	 "  size INTEGER NOT NULL,"
	 "  PRIMARY KEY (build_id, name)"
	 ") WITHOUT ROWID;"
	 "CREATE TABLE packages ("
	 "  build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	 "  name TEXT NOT NULL,"
	 "  version TEXT NOT NULL,"
	 "  arch TEXT NOT NULL,"
	 "  PRIMARY KEY (build_id, name, arch)"
	 ") WITHOUT ROWID;"},
	/* 2: the file list of each image (for diff), and listing by time. */
	{"CREATE TABLE files ("
	 "  build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	 "  path TEXT NOT NULL,"
	 "  sha256 TEXT NOT NULL,"
	 "  mode INTEGER NOT NULL,"
	 "  uid INTEGER NOT NULL,"
	 "  gid INTEGER NOT NULL,"
	 "  size INTEGER NOT NULL,"
	 "  PRIMARY KEY (build_id, path)"
	 ") WITHOUT ROWID;"
	 "CREATE INDEX builds_by_created ON builds (created, id);"},
	/* 3: where the outputs were written, so that show can say whether they are still there. */
	{"ALTER TABLE builds ADD COLUMN outdir TEXT;"},
	/* 4: where each build was published (imgforge publish; publications.c). */
	{"CREATE TABLE publications ("
	 "  build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	 "  target TEXT NOT NULL,"
	 "  region TEXT NOT NULL,"
	 "  image_id TEXT NOT NULL,"
	 "  name TEXT NOT NULL,"
	 "  location TEXT,"
	 "  format TEXT NOT NULL,"
	 "  sha256 TEXT NOT NULL,"
	 "  public INTEGER NOT NULL,"
	 "  created INTEGER NOT NULL,"
	 "  PRIMARY KEY (target, region, image_id)"
	 ") WITHOUT ROWID;"
	 "CREATE INDEX publications_by_build ON publications (build_id, created);"},
};

static const struct db_schema registry_db = {
	.what = "registry",
	.application_id = 0x69666772, /* "ifgr" */
	.table = "builds",
	.migrations = registry_schema,
	.n_migrations = ARRAY_SIZE(registry_schema),
};


/* --- records --- */

struct registry_build *registry_build_new(void)
{
	return xcalloc(1, sizeof(struct registry_build));
}

void registry_build_free(struct registry_build *b)
{
	size_t i;

	if (!b)
		return;
	free(b->id);
	free(b->image);
	free(b->version);
	free(b->profile);
	free(b->key_base);
	free(b->key_rootfs);
	free(b->key_disk);
	free(b->inputs);
	free(b->outdir);
	for (i = 0; i < b->n_outputs; i++)
		free(b->outputs[i].name);
	free(b->outputs);
	dpkg_packages_free(b->packages, b->n_packages);
	for (i = 0; i < b->n_files; i++)
		free(b->files[i].path);
	free(b->files);
	free(b);
}

void registry_build_freep(struct registry_build **b)
{
	registry_build_free(*b);
}

static void copy_hash(char dst[SHA256_HEX_LEN], const char *src)
{
	snprintf(dst, SHA256_HEX_LEN, "%s", src ? src : "");
}

void registry_build_add_output(struct registry_build *b, const char *name, const char *sha256,
			       uint64_t size)
{
	struct registry_output *o;

	b->outputs = xrealloc(b->outputs, (b->n_outputs + 1) * sizeof(*b->outputs));
	o = &b->outputs[b->n_outputs++];
	o->name = xstrdup(name);
	copy_hash(o->sha256, sha256);
	o->size = size;
}

void registry_build_add_package(struct registry_build *b, const char *name, const char *version,
				const char *arch)
{
	struct dpkg_package *p;

	b->packages = xrealloc(b->packages, (b->n_packages + 1) * sizeof(*b->packages));
	p = &b->packages[b->n_packages++];
	p->name = xstrdup(name);
	p->version = xstrdup(version);
	p->arch = xstrdup(arch);
}

void registry_build_take_packages(struct registry_build *b, struct dpkg_package **pkgs, size_t n)
{
	dpkg_packages_free(b->packages, b->n_packages);
	b->packages = TAKE_PTR(*pkgs);
	b->n_packages = b->packages ? n : 0;
}

void registry_build_add_file(struct registry_build *b, const char *path, const char *sha256,
			     uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size)
{
	struct registry_file *f;

	b->files = xrealloc(b->files, (b->n_files + 1) * sizeof(*b->files));
	f = &b->files[b->n_files++];
	f->path = xstrdup(path);
	copy_hash(f->sha256, sha256);
	f->mode = mode;
	f->uid = uid;
	f->gid = gid;
	f->size = size;
}

void registry_new_id(int64_t created, char ret[REGISTRY_ID_LEN])
{
	time_t t = (time_t)created;
	struct tm tm;
	uint32_t rnd = 0;
	char buf[96];

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		struct timespec ts;
		/* No entropy source: the clock's nanoseconds still separate builds. */
		clock_gettime(CLOCK_REALTIME, &ts);
		rnd = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16);
	}
	gmtime_r(&t, &tm);
	snprintf(buf, sizeof(buf), "%04d%02d%02d-%02d%02d%02d-%08" PRIx32,
		 (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, rnd);
	/* Always 24 characters for years 0-9999, which a clock gives. */
	snprintf(ret, REGISTRY_ID_LEN, "%.24s", buf);
}

/* --- opening --- */

static int open_mode(const char *path, enum db_mode mode, struct registry **ret, struct strbuf *err)
{
	struct registry *r;
	struct db *db = NULL;
	int version, k;

	if (str_startswith(path, "postgresql://") || str_startswith(path, "postgres://")) {
		strbuf_addf(err,
			    "registry '%s': the PostgreSQL backend is not available yet; use an "
			    "SQLite file path",
			    path);
		return -EOPNOTSUPP;
	}
	k = db_open_schema(path, &registry_db, mode, &db, err);
	if (k == -ENOENT && mode == DB_READONLY)
		strbuf_addf(err, "no registry at '%s'; builds are registered by 'imgforge build'",
			    path);
	if (k < 0)
		return k;
	k = db_user_version(db, &version, err);
	if (k < 0) {
		db_close(db);
		return k;
	}
	r = xcalloc(1, sizeof(*r));
	r->db = db;
	r->version = version;
	r->readonly = mode == DB_READONLY;
	*ret = r;
	return 0;
}

int registry_open(const char *path, struct registry **ret, struct strbuf *err)
{
	return open_mode(path, DB_READWRITE, ret, err);
}

int registry_open_readonly(const char *path, struct registry **ret, struct strbuf *err)
{
	return open_mode(path, DB_READONLY, ret, err);
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	db_close(r->db);
	free(r);
}

void registry_closep(struct registry **r)
{
	registry_close(*r);
}

/* --- adding --- */

static int cmp_pkg(const void *x, const void *y)
{
	return dpkg_package_compare(x, y);
}

static int cmp_file(const void *x, const void *y)
{
	const struct registry_file *a = x, *b = y;
	return strcmp(a->path, b->path);
}

static int cmp_output(const void *x, const void *y)
{
	const struct registry_output *a = x, *b = y;
	return strcmp(a->name, b->name);
}

/* Refuse what the schema would refuse, with a message about the build, not SQL. */
static int validate(struct registry_build *b, struct strbuf *err)
{
	size_t i;

	if (!b->image || !*b->image || !b->version || !*b->version) {
		strbuf_addstr(err, "cannot register a build without an image name and version");
		return -EINVAL;
	}
	for (i = 0; i < b->n_outputs; i++)
		if (!is_sha256_hex(b->outputs[i].sha256)) {
			strbuf_addf(err, "cannot register output '%s': invalid sha256 '%s'",
				    b->outputs[i].name, b->outputs[i].sha256);
			return -EINVAL;
		}
	for (i = 1; i < b->n_outputs; i++)
		if (!strcmp(b->outputs[i - 1].name, b->outputs[i].name)) {
			strbuf_addf(err, "cannot register output '%s' twice", b->outputs[i].name);
			return -EINVAL;
		}
	for (i = 1; i < b->n_packages; i++)
		if (!dpkg_package_compare(&b->packages[i - 1], &b->packages[i])) {
			strbuf_addf(err, "cannot register package '%s' (%s) twice",
				    b->packages[i].name, b->packages[i].arch);
			return -EINVAL;
		}
	for (i = 1; i < b->n_files; i++)
		if (!strcmp(b->files[i - 1].path, b->files[i].path)) {
			strbuf_addf(err, "cannot register file '%s' twice", b->files[i].path);
			return -EINVAL;
		}
	return 0;
}

static int id_exists(struct registry *r, const char *id, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int k;

	k = db_prepare(r->db, "SELECT 1 FROM builds WHERE id = ?1", &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, id);
	return db_step(s, err);
}

static int insert_rows(struct registry *r, const struct registry_build *b, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	size_t i;
	int k;

	k = db_prepare(r->db,
		       "INSERT INTO builds (id, image, version, profile, created, key_base, "
		       "key_rootfs, key_disk, inputs, outdir) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
		       "?8, ?9, ?10)",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, b->id);
	db_bind_text(s, 2, b->image);
	db_bind_text(s, 3, b->version);
	db_bind_text(s, 4, b->profile);
	db_bind_int64(s, 5, b->created);
	db_bind_text(s, 6, b->key_base);
	db_bind_text(s, 7, b->key_rootfs);
	db_bind_text(s, 8, b->key_disk);
	db_bind_text(s, 9, b->inputs);
	db_bind_text(s, 10, b->outdir);
	k = db_step_done(s, err);
	if (k < 0)
		return k;
	db_finalize(TAKE_PTR(s));

	k = db_prepare(r->db,
		       "INSERT INTO outputs (build_id, name, sha256, size) VALUES (?1, ?2, ?3, ?4)",
		       &s, err);
	if (k < 0)
		return k;
	for (i = 0; i < b->n_outputs; i++) {
		db_bind_text(s, 1, b->id);
		db_bind_text(s, 2, b->outputs[i].name);
		db_bind_text(s, 3, b->outputs[i].sha256);
		db_bind_int64(s, 4, (int64_t)b->outputs[i].size);
		k = db_step_done(s, err);
		if (k < 0)
			return k;
	}
	db_finalize(TAKE_PTR(s));

	k = db_prepare(
		r->db,
		"INSERT INTO packages (build_id, name, version, arch) VALUES (?1, ?2, ?3, ?4)", &s,
		err);
	if (k < 0)
		return k;
	for (i = 0; i < b->n_packages; i++) {
		db_bind_text(s, 1, b->id);
		db_bind_text(s, 2, b->packages[i].name);
		db_bind_text(s, 3, b->packages[i].version);
		db_bind_text(s, 4, b->packages[i].arch);
		k = db_step_done(s, err);
		if (k < 0)
			return k;
	}
	db_finalize(TAKE_PTR(s));

	k = db_prepare(r->db,
		       "INSERT INTO files (build_id, path, sha256, mode, uid, gid, size) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		       &s, err);
	if (k < 0)
		return k;
	for (i = 0; i < b->n_files; i++) {
		db_bind_text(s, 1, b->id);
		db_bind_text(s, 2, b->files[i].path);
		db_bind_text(s, 3, b->files[i].sha256);
		db_bind_int64(s, 4, b->files[i].mode);
		db_bind_int64(s, 5, b->files[i].uid);
		db_bind_int64(s, 6, b->files[i].gid);
		db_bind_int64(s, 7, (int64_t)b->files[i].size);
		k = db_step_done(s, err);
		if (k < 0)
			return k;
	}
	return 0;
}

int registry_add(struct registry *r, struct registry_build *b, char **ret_id, struct strbuf *err)
{
	bool own_id = !b->id;
	int k, tries;

	if (r->readonly) {
		strbuf_addf(err, "registry '%s' was opened read-only", db_path(r->db));
		return -EROFS;
	}
	if (b->n_packages > 1)
		qsort(b->packages, b->n_packages, sizeof(*b->packages), cmp_pkg);
	if (b->n_files > 1)
		qsort(b->files, b->n_files, sizeof(*b->files), cmp_file);
	if (b->n_outputs > 1)
		qsort(b->outputs, b->n_outputs, sizeof(*b->outputs), cmp_output);
	k = validate(b, err);
	if (k < 0)
		return k;
	if (!b->created)
		b->created = (int64_t)time(NULL);

	k = db_begin(r->db, err);
	if (k < 0)
		return k;
	for (tries = 0;; tries++) {
		if (own_id) {
			char id[REGISTRY_ID_LEN];

			registry_new_id(b->created, id);
			free(b->id);
			b->id = xstrdup(id);
		}
		k = id_exists(r, b->id, err);
		if (k < 0)
			goto fail;
		if (k == 0)
			break;
		if (!own_id || tries >= 8) {
			strbuf_addf(err, "build '%s' is already registered", b->id);
			k = -EEXIST;
			goto fail;
		}
	}
	k = insert_rows(r, b, err);
	if (k < 0)
		goto fail;
	k = db_commit(r->db, err);
	if (k < 0)
		goto fail;
	if (ret_id)
		*ret_id = xstrdup(b->id);
	return 0;
fail:
	db_rollback(r->db);
	if (own_id) {
		free(b->id);
		b->id = NULL;
	}
	return k;
}

/* --- reading --- */

void registry_summaries_free(struct registry_summary *s, size_t n)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < n; i++) {
		free(s[i].id);
		free(s[i].image);
		free(s[i].version);
		free(s[i].profile);
	}
	free(s);
}

int registry_list(struct registry *r, struct registry_summary **ret, size_t *ret_n,
		  struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	struct registry_summary *list = NULL;
	size_t n = 0, alloc = 0;
	int k;

	/* Version 1 had no file lists. */
	k = db_prepare(r->db,
		       r->version >= 2
			       ? "SELECT b.id, b.image, b.version, b.profile, b.created,"
				 " (SELECT count(*) FROM packages p WHERE p.build_id = b.id),"
				 " (SELECT count(*) FROM files f WHERE f.build_id = b.id),"
				 " (SELECT count(*) FROM outputs o WHERE o.build_id = b.id)"
				 " FROM builds b ORDER BY b.created, b.id"
			       : "SELECT b.id, b.image, b.version, b.profile, b.created,"
				 " (SELECT count(*) FROM packages p WHERE p.build_id = b.id), 0,"
				 " (SELECT count(*) FROM outputs o WHERE o.build_id = b.id)"
				 " FROM builds b ORDER BY b.created, b.id",
		       &s, err);
	if (k < 0)
		return k;
	while ((k = db_step(s, err)) > 0) {
		struct registry_summary *e;

		GROW(list, alloc, n + 1);
		e = &list[n++];
		e->id = db_column_strdup(s, 0);
		e->image = db_column_strdup(s, 1);
		e->version = db_column_strdup(s, 2);
		e->profile = db_column_strdup(s, 3);
		e->created = db_column_int64(s, 4);
		e->n_packages = (size_t)db_column_int64(s, 5);
		e->n_files = (size_t)db_column_int64(s, 6);
		e->n_outputs = (size_t)db_column_int64(s, 7);
	}
	if (k < 0) {
		registry_summaries_free(list, n);
		return k;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

/* Resolve an id or a unique prefix of one to the full id. */
static int resolve_id(struct registry *r, const char *want, char **ret, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	struct strbuf names = STRBUF_INIT;
	char *found = NULL;
	int k, n = 0;

	if (!*want) {
		strbuf_addstr(err, "empty build id");
		return -EINVAL;
	}
	k = db_prepare(r->db,
		       "SELECT id FROM builds WHERE id = ?1 UNION ALL "
		       "SELECT id FROM builds WHERE substr(id, 1, length(?1)) = ?1 AND id != ?1 "
		       "LIMIT 4",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, want);
	while ((k = db_step(s, err)) > 0) {
		const char *id = db_column_text(s, 0);

		if (n == 0 && !strcmp(id, want)) {
			found = xstrdup(id);
			break;
		}
		if (n == 0)
			found = xstrdup(id);
		strbuf_addf(&names, "%s'%s'", n ? ", " : "", id);
		n++;
	}
	if (k < 0) {
		free(found);
		strbuf_release(&names);
		return k;
	}
	if (!found) {
		strbuf_addf(err, "no build '%s' in the registry", want);
		strbuf_release(&names);
		return -ENOENT;
	}
	if (n > 1) {
		strbuf_addf(err, "build id '%s' is ambiguous: it starts %s%s", want, names.buf,
			    n > 3 ? ", ..." : "");
		free(found);
		strbuf_release(&names);
		return -ENOTUNIQ;
	}
	strbuf_release(&names);
	*ret = found;
	return 0;
}

static int load_lists(struct registry *r, struct registry_build *b, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int k;

	k = db_prepare(r->db,
		       "SELECT name, sha256, size FROM outputs WHERE build_id = ?1 ORDER BY name",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, b->id);
	while ((k = db_step(s, err)) > 0)
		registry_build_add_output(b, db_column_text(s, 0), db_column_text(s, 1),
					  (uint64_t)db_column_int64(s, 2));
	if (k < 0)
		return k;
	db_finalize(TAKE_PTR(s));

	k = db_prepare(r->db,
		       "SELECT name, version, arch FROM packages WHERE build_id = ?1 "
		       "ORDER BY name, arch",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, b->id);
	while ((k = db_step(s, err)) > 0)
		registry_build_add_package(b, db_column_text(s, 0), db_column_text(s, 1),
					   db_column_text(s, 2));
	if (k < 0)
		return k;
	db_finalize(TAKE_PTR(s));
	if (r->version < 2) /* no file lists yet */
		return 0;

	k = db_prepare(r->db,
		       "SELECT path, sha256, mode, uid, gid, size FROM files WHERE build_id = ?1 "
		       "ORDER BY path",
		       &s, err);
	if (k < 0)
		return k;
	db_bind_text(s, 1, b->id);
	while ((k = db_step(s, err)) > 0)
		registry_build_add_file(
			b, db_column_text(s, 0), db_column_text(s, 1),
			(uint32_t)db_column_int64(s, 2), (uint32_t)db_column_int64(s, 3),
			(uint32_t)db_column_int64(s, 4), (uint64_t)db_column_int64(s, 5));
	return k < 0 ? k : 0;
}

int registry_get(struct registry *r, const char *id_or_prefix, struct registry_build **ret,
		 struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	_cleanup_build_ struct registry_build *b = NULL;
	_cleanup_free_ char *id = NULL;
	int k;

	k = resolve_id(r, id_or_prefix, &id, err);
	if (k < 0)
		return k;
	/* One read transaction, so the build and its lists are one snapshot. */
	k = db_exec(r->db, "BEGIN", err);
	if (k < 0)
		return k;
	/* outdir arrived with version 3. */
	k = db_prepare(r->db,
		       r->version >= 3
			       ? "SELECT id, image, version, profile, created, key_base, "
				 "key_rootfs, key_disk, inputs, outdir FROM builds WHERE id = ?1"
			       : "SELECT id, image, version, profile, created, key_base, "
				 "key_rootfs, key_disk, inputs, NULL FROM builds WHERE id = ?1",
		       &s, err);
	if (k < 0)
		goto out;
	db_bind_text(s, 1, id);
	k = db_step(s, err);
	if (k <= 0) {
		if (k == 0) {
			strbuf_addf(err, "no build '%s' in the registry", id);
			k = -ENOENT;
		}
		goto out;
	}
	b = registry_build_new();
	b->id = db_column_strdup(s, 0);
	b->image = db_column_strdup(s, 1);
	b->version = db_column_strdup(s, 2);
	b->profile = db_column_strdup(s, 3);
	b->created = db_column_int64(s, 4);
	b->key_base = db_column_strdup(s, 5);
	b->key_rootfs = db_column_strdup(s, 6);
	b->key_disk = db_column_strdup(s, 7);
	b->inputs = db_column_strdup(s, 8);
	b->outdir = db_column_strdup(s, 9);
	db_finalize(TAKE_PTR(s));
	k = load_lists(r, b, err);
out:
	db_finalize(TAKE_PTR(s));
	db_rollback(r->db);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(b);
	return 0;
}

/* --- diff --- */

const char *registry_change_name(enum registry_change c)
{
	switch (c) {
	case REGISTRY_ADDED:
		return "added";
	case REGISTRY_REMOVED:
		return "removed";
	case REGISTRY_UPGRADED:
		return "upgraded";
	case REGISTRY_DOWNGRADED:
		return "downgraded";
	case REGISTRY_CHANGED:
		return "changed";
	}
	return "?";
}

static int cmp_pkg_ptr(const void *x, const void *y)
{
	return dpkg_package_compare(*(const struct dpkg_package *const *)x,
				    *(const struct dpkg_package *const *)y);
}

static int cmp_file_ptr(const void *x, const void *y)
{
	return strcmp((*(const struct registry_file *const *)x)->path,
		      (*(const struct registry_file *const *)y)->path);
}

/* Sorted pointers to the elements of an array, whatever order the array is in. */
static const void **sorted_ptrs(const void *base, size_t n, size_t size,
				int (*cmp)(const void *, const void *))
{
	const void **p = xcalloc(n ? n : 1, sizeof(*p));
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (const char *)base + i * size;
	if (n > 1)
		qsort(p, n, sizeof(*p), cmp);
	return p;
}

static void diff_packages(struct registry_diff *d, const struct registry_build *a,
			  const struct registry_build *b)
{
	const struct dpkg_package **pa = (const struct dpkg_package **)sorted_ptrs(
		a->packages, a->n_packages, sizeof(*a->packages), cmp_pkg_ptr);
	const struct dpkg_package **pb = (const struct dpkg_package **)sorted_ptrs(
		b->packages, b->n_packages, sizeof(*b->packages), cmp_pkg_ptr);
	size_t i = 0, j = 0, alloc = 0;

	while (i < a->n_packages || j < b->n_packages) {
		struct registry_package_change ch = {0};
		int c;

		if (i >= a->n_packages)
			c = 1;
		else if (j >= b->n_packages)
			c = -1;
		else
			c = dpkg_package_compare(pa[i], pb[j]);
		if (c < 0) {
			ch.change = REGISTRY_REMOVED;
			ch.old = pa[i++];
		} else if (c > 0) {
			ch.change = REGISTRY_ADDED;
			ch.new = pb[j++];
		} else {
			int v = dpkg_version_compare(pa[i]->version, pb[j]->version);

			ch.old = pa[i++];
			ch.new = pb[j++];
			if (v < 0)
				ch.change = REGISTRY_UPGRADED;
			else if (v > 0)
				ch.change = REGISTRY_DOWNGRADED;
			else if (strcmp(ch.old->version, ch.new->version))
				ch.change = REGISTRY_CHANGED;
			else
				continue;
		}
		GROW(d->packages, alloc, d->n_packages + 1);
		d->packages[d->n_packages++] = ch;
	}
	free(pa);
	free(pb);
}

static unsigned file_differences(const struct registry_file *x, const struct registry_file *y)
{
	unsigned what = 0;

	if (strcmp(x->sha256, y->sha256))
		what |= REGISTRY_FILE_CONTENT;
	if (x->mode != y->mode)
		what |= REGISTRY_FILE_MODE;
	if (x->uid != y->uid || x->gid != y->gid)
		what |= REGISTRY_FILE_OWNER;
	if (x->size != y->size)
		what |= REGISTRY_FILE_SIZE;
	return what;
}

static void diff_files(struct registry_diff *d, const struct registry_build *a,
		       const struct registry_build *b)
{
	const struct registry_file **fa = (const struct registry_file **)sorted_ptrs(
		a->files, a->n_files, sizeof(*a->files), cmp_file_ptr);
	const struct registry_file **fb = (const struct registry_file **)sorted_ptrs(
		b->files, b->n_files, sizeof(*b->files), cmp_file_ptr);
	size_t i = 0, j = 0, alloc = 0;

	while (i < a->n_files || j < b->n_files) {
		struct registry_file_change ch = {0};
		int c;

		if (i >= a->n_files)
			c = 1;
		else if (j >= b->n_files)
			c = -1;
		else
			c = strcmp(fa[i]->path, fb[j]->path);
		if (c < 0) {
			ch.change = REGISTRY_REMOVED;
			ch.old = fa[i++];
		} else if (c > 0) {
			ch.change = REGISTRY_ADDED;
			ch.new = fb[j++];
		} else {
			ch.old = fa[i++];
			ch.new = fb[j++];
			ch.what = file_differences(ch.old, ch.new);
			if (!ch.what)
				continue;
			ch.change = REGISTRY_CHANGED;
		}
		GROW(d->files, alloc, d->n_files + 1);
		d->files[d->n_files++] = ch;
	}
	free(fa);
	free(fb);
}

struct registry_diff *registry_diff(const struct registry_build *a, const struct registry_build *b)
{
	struct registry_diff *d = xcalloc(1, sizeof(*d));

	diff_packages(d, a, b);
	diff_files(d, a, b);
	return d;
}

void registry_diff_free(struct registry_diff *d)
{
	if (!d)
		return;
	free(d->packages);
	free(d->files);
	free(d);
}
