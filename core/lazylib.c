/* lazylib — libpq and libcurl opened on first use; see lazylib.h. */
#define LAZYLIB_IMPL
#include "lazylib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "log.h"

struct lazylib_pq	lazylib_pq_;
struct lazylib_curl	lazylib_curl_;

static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static void		*pq_handle, *curl_handle;
static bool		 curl_tried, curl_started;

/*
 * Fill table member f from h, as dlsym(3)'s own page shows: a pointer to a
 * function and a void * share their representation wherever dlsym runs.
 */
#define LAZYLIB_LOAD(f) \
	if (missing == NULL && (*(void **)&table->f = dlsym(h, #f)) == NULL) \
		missing = #f;

/* Open soname with RTLD_NOW; the handle, or NULL with err. */
static void *
open_lib(const char *soname, char *err, size_t errlen)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL)
		snprintf(err, errlen, "cannot load %s: %s", soname, dlerror());
	return h;
}

int
lazylib_pq(char *err, size_t errlen)
{
	int rc = 0;
	pthread_mutex_lock(&lock);
	if (pq_handle == NULL) {
		void *h = open_lib(LAZYLIB_PQ, err, errlen);
		struct lazylib_pq *table = &lazylib_pq_;
		const char *missing = h ? NULL : "";
		LAZYLIB_PQ_FUNCS(LAZYLIB_LOAD)
		if (h != NULL && missing != NULL) {
			snprintf(err, errlen, "%s has no %s", LAZYLIB_PQ, missing);
			dlclose(h);
		}
		if (missing == NULL)
			pq_handle = h;	/* kept to the end: libpq is not unloaded */
		else
			rc = -1;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

CURL *
lazylib_curl_easy_init(void)
{
	char err[256];
	pthread_mutex_lock(&lock);
	if (!curl_tried) {
		/* One try: a library missing now stays missing until a restart. */
		curl_tried = true;
		void *h = curl_handle ? curl_handle : open_lib(LAZYLIB_CURL, err, sizeof err);
		struct lazylib_curl *table = &lazylib_curl_;
		const char *missing = h ? NULL : "";
		LAZYLIB_CURL_FUNCS(LAZYLIB_LOAD)
		if (h != NULL && missing != NULL) {
			snprintf(err, sizeof err, "%s has no %s", LAZYLIB_CURL, missing);
			dlclose(h);
		}
		if (missing != NULL)
			log_error("libcurl cannot be loaded: no mail is relayed and no push or "
			    "webhook is called until it is installed and notifyd restarted",
			    "error=%s", err);
		else if (curl_handle = h, table->curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			log_error("libcurl failed to start", "error=%s", "curl_global_init");
		else
			curl_started = true;
	}
	bool started = curl_started;
	pthread_mutex_unlock(&lock);
	return started ? lazylib_curl_.curl_easy_init() : NULL;
}

void
lazylib_close(void)
{
	pthread_mutex_lock(&lock);
	if (curl_started)
		lazylib_curl_.curl_global_cleanup();
	/* Not dlclose'd: a library's exit handlers may still name its code. */
	curl_tried = curl_started = false;
	pthread_mutex_unlock(&lock);
}
