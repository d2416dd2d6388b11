/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CLOUD_H
#define IMGFORGE_CLOUD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/*
 * Publishing a built disk into a cloud as a bootable image. The publish
 * command (src/cmd/publish.c) turns a build into the file a cloud takes
 * (exported in-process), then one of the functions below uploads and
 * registers it. Each reads the cloud's credentials from that cloud's own
 * standard places and never prints, logs or stores them. Each returns 0
 * with res filled, or -errno with one line in err (the cloud's error code
 * and message, and what to do).
 */

/* Upload progress: bytes sent so far of total. */
typedef void (*cloud_progress_fn)(void *userdata, uint64_t done, uint64_t total);

struct cloud_image {
	const char *build_id;
	const char *name;	  /* image name in the cloud */
	const char *description;  /* one line, or NULL */
	const char *path;	  /* the file to upload */
	const char *format;	  /* of that file: "raw", "qcow2", "vhd", "vmdk" */
	uint64_t size;		  /* bytes of the file */
	uint64_t virtual_size;	  /* bytes of the disk it holds */
	const char *sha256;	  /* hex SHA-256 of the file */
	const char *firmware;	  /* "uefi" or "bios": how the cloud should boot it */
	const char *os_distro;	  /* "debian", "ubuntu" */
	const char *os_version;	  /* "12", "24.04" */
	const char *region;	  /* NULL: the region of the cloud's configuration */
	bool public_image;	  /* visible to every account of the cloud */
	const char *bucket;	  /* object storage bucket to upload through, or NULL */
	const char *state_dir;	  /* private directory for a resumable upload's state */
	cloud_progress_fn progress;
	void *progress_userdata;
};

struct cloud_result {
	char *target;	/* "aws", "openstack", "scaleway" */
	char *region;	/* where it was published ("" when the cloud has none) */
	char *image_id; /* the cloud's id of the new image */
	char *location; /* more: an endpoint URL, a snapshot id; NULL when none */
};

int cloud_publish_aws(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err);
int cloud_publish_openstack(const struct cloud_image *img, struct cloud_result *res,
			    struct strbuf *err);
int cloud_publish_scaleway(const struct cloud_image *img, struct cloud_result *res,
			   struct strbuf *err);

void cloud_result_release(struct cloud_result *res);

#endif
