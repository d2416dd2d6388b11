/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_FETCH_INTERNAL_H
#define IMGFORGE_FETCH_INTERNAL_H

/* What fetch.c and fetch-stream.c share; not for other modules. */

#include <stdbool.h>

#include <curl/curl.h>

#include "core/util.h"

#define MAX_RETRY_DELAY_MS 60000u

int fetch_curl_init(struct strbuf *err);
bool fetch_http_transient(long code);
bool fetch_curl_transient(CURLcode c);
int fetch_curl_errno(CURLcode c, long http_code);
void fetch_sleep_ms(unsigned ms);
/* A plain path becomes a file:// URL; *ret is malloc'd. */
int fetch_make_url(const char *src, char **ret, struct strbuf *err);
/* What every request imgforge makes sets: protocols, redirects, errors, agent. */
void fetch_setup_common(CURL *c, const char *url, char *errbuf);
void fetch_describe_failure(struct strbuf *err, const char *url, CURLcode c, long http_code,
			    const char *errbuf, unsigned attempts);

#endif
