/* SPDX-License-Identifier: MIT */
/*
 * Archive reading on libarchive. See tarball.h.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/tarball.h"

#define TARBALL_BLOCK (1024 * 1024)

struct tarball {
	char *path;
	int fd;                  /* ours, closed by tarball_free() */
	struct archive *outer;   /* the file as opened */
	struct archive *inner;   /* the data.tar of a .deb, else NULL */
	struct archive *a;       /* the one entries come from */
	char *member;            /* name of the .deb member read, for messages */
	const char *entry_path;  /* current entry, for messages */
	struct strbuf prev_path; /* the entry before, for errors between entries */
	uint64_t next_index;
	struct tarball_xattr *xattrs;
	size_t n_xattrs, alloc_xattrs;
	struct strbuf acl[2]; /* system.posix_acl_{access,default} values */
};

static int archive_to_errno(struct archive *a)
{
	int e = archive_errno(a);

	/* libarchive uses -1 and EILSEQ-like codes for format errors. */
	if (e <= 0 || e == EILSEQ)
		return -EBADMSG;
	return -e;
}

static int fail(struct tarball *t, struct archive *a, struct strbuf *err, const char *what)
{
	const char *msg = archive_error_string(a);

	strbuf_addf(err, "%s '%s'", what, t->path);
	if (t->member)
		strbuf_addf(err, " (member '%s')", t->member);
	if (t->entry_path)
		strbuf_addf(err, " at entry '%s'", t->entry_path);
	else if (t->prev_path.len)
		strbuf_addf(err, " after entry '%s'", t->prev_path.buf);
	strbuf_addf(err, ": %s", msg ? msg : "unknown error");
	return archive_to_errno(a);
}

static struct archive *new_reader(bool outer)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (outer)
		archive_read_support_format_ar(a);
	return a;
}

/* The inner archive of a .deb reads the outer one's current member. */
static la_ssize_t member_read(struct archive *a, void *data, const void **buf)
{
	struct tarball *t = data;
	la_int64_t off;
	size_t len;
	int r;

	(void)a;
	r = archive_read_data_block(t->outer, buf, &len, &off);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_WARN) {
		archive_set_error(a, EIO, "%s", archive_error_string(t->outer));
		return -1;
	}
	return (la_ssize_t)len;
}

/*
 * A .deb is an ar archive: "debian-binary", "control.tar.*", "data.tar.*".
 * The root filesystem contribution is data.tar.*, read through a second
 * libarchive reader fed from the first.
 */
static int open_deb(struct tarball *t, struct archive_entry *first, struct strbuf *err)
{
	struct archive_entry *e = first;
	int r;

	for (;;) {
		const char *name = archive_entry_pathname(e);

		if (name && str_startswith(name, "data.tar"))
			break;
		r = archive_read_next_header(t->outer, &e);
		if (r == ARCHIVE_EOF) {
			strbuf_addf(err, "cannot read '%s': an ar archive without a data.tar member "
				    "(not a Debian package?)", t->path);
			return -EBADMSG;
		}
		if (r < ARCHIVE_WARN)
			return fail(t, t->outer, err, "cannot read");
	}
	t->member = xstrdup(archive_entry_pathname(e));
	t->inner = new_reader(false);
	if (!t->inner)
		return -ENOMEM;
	r = archive_read_open(t->inner, t, NULL, member_read, NULL);
	if (r != ARCHIVE_OK)
		return fail(t, t->inner, err, "cannot read");
	t->a = t->inner;
	return 0;
}

int tarball_open(const char *path, int fd, struct tarball **ret, struct strbuf *err)
{
	struct tarball *t = xcalloc(1, sizeof(*t));
	int r;

	t->path = xstrdup(path);
	if (fd >= 0) {
		t->fd = dup(fd);
		if (t->fd >= 0 && lseek(t->fd, 0, SEEK_SET) < 0) {
			close(t->fd);
			t->fd = -1;
		}
	} else {
		t->fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (t->fd < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(-r));
		goto out;
	}
	t->outer = new_reader(true);
	if (!t->outer) {
		r = -ENOMEM;
		goto out;
	}
	if (archive_read_open_fd(t->outer, t->fd, TARBALL_BLOCK) != ARCHIVE_OK) {
		r = fail(t, t->outer, err, "cannot read");
		goto out;
	}
	t->a = t->outer;
	*ret = t;
	return 0;
out:
	tarball_free(t);
	return r;
}

static enum tarball_type entry_type(struct archive_entry *e, bool *ok)
{
	*ok = true;
	if (archive_entry_hardlink(e))
		return TARBALL_HARDLINK;
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return TARBALL_REG;
	case AE_IFDIR:
		return TARBALL_DIR;
	case AE_IFLNK:
		return TARBALL_SYMLINK;
	case AE_IFCHR:
		return TARBALL_CHR;
	case AE_IFBLK:
		return TARBALL_BLK;
	case AE_IFIFO:
		return TARBALL_FIFO;
	case AE_IFSOCK:
		return TARBALL_SOCK;
	}
	*ok = false;
	return TARBALL_REG;
}

/* Prefer the UTF-8 form (pax stores names as UTF-8), else the raw bytes. */
static const char *entry_path(struct archive_entry *e)
{
	const char *p = archive_entry_pathname_utf8(e);

	return p ? p : archive_entry_pathname(e);
}

static const char *entry_linkname(struct archive_entry *e)
{
	const char *p;

	if (archive_entry_hardlink(e)) {
		p = archive_entry_hardlink_utf8(e);
		return p ? p : archive_entry_hardlink(e);
	}
	p = archive_entry_symlink_utf8(e);
	return p ? p : archive_entry_symlink(e);
}

/* An ACL entry in the Linux xattr format (struct posix_acl_xattr_entry), for sorting. */
struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_ent_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * POSIX.1e ACLs of an entry (pax SCHILY.acl.*, libarchive's ACL interface)
 * as the value of system.posix_acl_access or _default in the Linux xattr
 * format: version 2, then (tag, perm, id) sorted by tag and id. libext2fs
 * turns that into ext4's on-disk form. Returns false without ACLs of type.
 */
static bool acl_xattr(struct archive_entry *e, int type, struct strbuf *out)
{
	struct acl_ent *v;
	int n = archive_entry_acl_reset(e, type), i = 0, atype, perm, tag, qual;
	const char *name;

	strbuf_reset(out);
	if (n <= 0)
		return false;
	v = xcalloc((size_t)n, sizeof(*v));
	while (i < n && archive_entry_acl_next(e, type, &atype, &perm, &tag, &qual, &name) ==
				ARCHIVE_OK) {
		static const struct {
			int la;
			uint16_t lx;
		} tags[] = {
			{ ARCHIVE_ENTRY_ACL_USER_OBJ, 0x01 }, { ARCHIVE_ENTRY_ACL_USER, 0x02 },
			{ ARCHIVE_ENTRY_ACL_GROUP_OBJ, 0x04 }, { ARCHIVE_ENTRY_ACL_GROUP, 0x08 },
			{ ARCHIVE_ENTRY_ACL_MASK, 0x10 },     { ARCHIVE_ENTRY_ACL_OTHER, 0x20 },
		};
		size_t k;

		for (k = 0; k < ARRAY_SIZE(tags); k++)
			if (tags[k].la == tag)
				break;
		if (k == ARRAY_SIZE(tags))
			continue;
		v[i].tag = tags[k].lx;
		v[i].perm = (uint16_t)(perm & (ARCHIVE_ENTRY_ACL_READ | ARCHIVE_ENTRY_ACL_WRITE |
					       ARCHIVE_ENTRY_ACL_EXECUTE));
		v[i].id = (tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP)
				  ? (uint32_t)qual
				  : 0xffffffffU;
		i++;
	}
	qsort(v, (size_t)i, sizeof(*v), acl_ent_cmp);
	strbuf_add_le32(out, 2);
	for (n = 0; n < i; n++) {
		strbuf_add_le16(out, v[n].tag);
		strbuf_add_le16(out, v[n].perm);
		strbuf_add_le32(out, v[n].id);
	}
	free(v);
	return i > 0;
}

int tarball_next(struct tarball *t, struct tarball_entry *ret, struct strbuf *err)
{
	struct archive_entry *e;
	const char *name;
	const void *value;
	size_t size;
	bool ok;
	int r;

	if (t->entry_path) {
		strbuf_reset(&t->prev_path);
		strbuf_addstr(&t->prev_path, t->entry_path);
	}
	t->entry_path = NULL;
	/*
	 * ARCHIVE_RETRY means a damaged header that libarchive would skip;
	 * skipping would silently drop entries, so it is an error here.
	 */
	r = archive_read_next_header(t->a, &e);
	if (r == ARCHIVE_EOF) {
		if (t->a == t->outer && t->next_index == 0 && archive_format(t->a) == 0) {
			/* An empty file is no archive; say so rather than give an empty tree. */
			strbuf_addf(err, "cannot read '%s': empty or not an archive", t->path);
			return -EBADMSG;
		}
		return 0;
	}
	if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY)
		return fail(t, t->a, err, "cannot read");
	if (t->a == t->outer && t->next_index == 0 &&
	    (archive_format(t->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_AR) {
		r = open_deb(t, e, err);
		if (r < 0)
			return r;
		return tarball_next(t, ret, err);
	}

	memset(ret, 0, sizeof(*ret));
	ret->path = entry_path(e);
	if (!ret->path) {
		strbuf_addf(err, "cannot read '%s': entry %llu has no name", t->path,
			    (unsigned long long)t->next_index);
		return -EBADMSG;
	}
	t->entry_path = ret->path;
	ret->type = entry_type(e, &ok);
	if (!ok) {
		strbuf_addf(err, "cannot read '%s': entry '%s' has an unknown file type (mode %o)",
			    t->path, ret->path, (unsigned)archive_entry_mode(e));
		return -EBADMSG;
	}
	ret->linkname = entry_linkname(e);
	if ((ret->type == TARBALL_SYMLINK || ret->type == TARBALL_HARDLINK) &&
	    (!ret->linkname || !ret->linkname[0])) {
		strbuf_addf(err, "cannot read '%s': link '%s' has no target", t->path, ret->path);
		return -EBADMSG;
	}
	ret->mode = archive_entry_perm(e) & 07777;
	ret->uid = (uint32_t)archive_entry_uid(e);
	ret->gid = (uint32_t)archive_entry_gid(e);
	ret->mtime = archive_entry_mtime_is_set(e) ? (int64_t)archive_entry_mtime(e) : 0;
	ret->rdev_major = (uint32_t)archive_entry_rdevmajor(e);
	ret->rdev_minor = (uint32_t)archive_entry_rdevminor(e);
	ret->size = archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
	if (ret->type == TARBALL_REG && archive_entry_sparse_reset(e) > 0) {
		la_int64_t off, len, end = 0;

		while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) {
			if (off < end || len < 0 || (uint64_t)off + (uint64_t)len > ret->size) {
				strbuf_addf(err, "cannot read '%s': entry '%s' has a sparse map beyond "
					    "its size; the archive is corrupt", t->path, ret->path);
				return -EBADMSG;
			}
			if (len > 0) {
				ret->data_runs++;
				ret->data_bytes += (uint64_t)len;
			}
			end = off + len;
		}
	} else if (ret->type == TARBALL_REG) {
		ret->data_bytes = ret->size;
		ret->data_runs = ret->size ? 1 : 0;
	}

	t->n_xattrs = 0;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ name, value, size };
	}
	if (acl_xattr(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &t->acl[0])) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ "system.posix_acl_access",
								   t->acl[0].buf, t->acl[0].len };
	}
	if (acl_xattr(e, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, &t->acl[1])) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ "system.posix_acl_default",
								   t->acl[1].buf, t->acl[1].len };
	}
	ret->xattrs = t->xattrs;
	ret->n_xattrs = t->n_xattrs;
	ret->index = t->next_index++;
	return 1;
}

int tarball_read(struct tarball *t, const void **ret_buf, size_t *ret_len, uint64_t *ret_offset,
		 struct strbuf *err)
{
	la_int64_t off;
	size_t len;
	int r;

	r = archive_read_data_block(t->a, ret_buf, &len, &off);
	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY)
		return fail(t, t->a, err, "cannot read");
	if (off < 0) {
		strbuf_addf(err, "cannot read '%s': entry '%s' has data at a negative offset",
			    t->path, t->entry_path ? t->entry_path : "?");
		return -EBADMSG;
	}
	*ret_len = len;
	*ret_offset = (uint64_t)off;
	return 1;
}

void tarball_free(struct tarball *t)
{
	if (!t)
		return;
	if (t->inner)
		archive_read_free(t->inner);
	if (t->outer)
		archive_read_free(t->outer);
	if (t->fd >= 0)
		close(t->fd);
	free(t->xattrs);
	strbuf_release(&t->prev_path);
	strbuf_release(&t->acl[0]);
	strbuf_release(&t->acl[1]);
	free(t->member);
	free(t->path);
	free(t);
}
