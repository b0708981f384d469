/*
 * basalt-fio: the C half of the fio external ioengine "basalt".
 *
 * fio's structs (thread_data, io_u, fio_file, ioengine_ops, fio_option) are only touched
 * here, compiled against the installed fio's own headers and config-host.h (see
 * build.rs); all engine logic lives in Rust (src/ffi.rs) behind the basalt_fio_* calls.
 * The ops are handed to fio by get_ioengine(), exported from Rust.
 *
 * SPDX-License-Identifier: GPL-2.0-only
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fio.h"
#include "optgroup.h"

/*
 * fio's functions and data resolve against the fio binary at dlopen time (it is linked
 * -rdynamic). Weak references let the crate's own test executables, which link this
 * object without fio, link too; there they are never called.
 */
#pragma weak add_file
#pragma weak log_err

/*
 * Layout guards: offsets measured from Debian's /usr/bin/fio 3.33 (see docs/fio.md).
 * If the headers fetched do not describe the fio binary we were measured against, the
 * build fails here instead of corrupting memory at run time.
 */
#if defined(__x86_64__)
_Static_assert(offsetof(struct thread_data, eo) == 4216, "thread_data.eo moved");
_Static_assert(offsetof(struct thread_data, files) == 188832, "thread_data.files moved");
_Static_assert(offsetof(struct thread_data, io_ops) == 189952, "thread_data.io_ops moved");
_Static_assert(offsetof(struct thread_data, io_ops_data) == 189968, "thread_data.io_ops_data moved");
_Static_assert(sizeof(struct thread_data) == 192056, "thread_data size changed");
_Static_assert(sizeof(struct ioengine_ops) == 264, "ioengine_ops size changed");
_Static_assert(offsetof(struct io_u, xfer_buf) == 104, "io_u.xfer_buf moved");
_Static_assert(offsetof(struct fio_file, real_file_size) == 48, "fio_file.real_file_size moved");
#endif
_Static_assert(FIO_IOOPS_VERSION == 31, "unexpected ioengine ops version");

#ifndef BASALT_FIO_HEADERS_VERSION
#error "build.rs defines BASALT_FIO_HEADERS_VERSION from the fio source tree"
#endif

/* The engine options as handed to Rust (src/ffi.rs: RawOptions). */
struct basalt_fio_raw_options {
	const char *mds;
	const char *volume;
	const char *transport;
	unsigned int busy_poll;
	unsigned int runtime_threads;
};

/* Implemented in Rust (src/ffi.rs). */
int basalt_fio_probe(const struct basalt_fio_raw_options *o, uint64_t *size,
		     char *err, size_t errlen);
void *basalt_fio_init(const struct basalt_fio_raw_options *o, unsigned int iodepth,
		      char *err, size_t errlen);
int basalt_fio_queue(void *eng, void *io_u, int ddir, uint64_t offset, void *buf,
		     uint64_t len);
int basalt_fio_getevents(void *eng, unsigned int min, unsigned int max, int64_t timeout_ns);
void *basalt_fio_event(void *eng, int i, const void **data, uint64_t *data_len,
		       unsigned int *error, uint64_t *resid);
int basalt_fio_open_file(void *eng);
int basalt_fio_close_file(void *eng);
void basalt_fio_cleanup(void *eng);

/* fio's option parser stores into this struct; it must not start with an option (off1 == 0). */
struct basalt_options {
	void *pad;
	char *mds;
	char *volume;
	char *transport;
	unsigned int busy_poll;
	unsigned int runtime_threads;
};

static struct fio_option options[] = {
	{
		.name = "mds",
		.lname = "Basalt MDS addresses",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct basalt_options, mds),
		.help = "Comma-separated MDS addresses (host:port,...)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "volume",
		.lname = "Basalt volume",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct basalt_options, volume),
		.help = "Volume name, or mem:SIZE for the in-memory test backend",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "transport",
		.lname = "Basalt transport",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct basalt_options, transport),
		.help = "Transport to the chunkservers",
		.def = "auto",
		.posval = {
			{ .ival = "tcp", .help = "TCP only" },
			{ .ival = "ucx", .help = "UCX active messages (RDMA), TCP fallback" },
			{ .ival = "auto", .help = "UCX when it beats TCP, else TCP" },
		},
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "busy_poll",
		.lname = "Busy-poll completions",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct basalt_options, busy_poll),
		.help = "Spin instead of sleeping while waiting for completions",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "runtime_threads",
		.lname = "Engine runtime threads",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct basalt_options, runtime_threads),
		.help = "Worker threads of each job's async runtime",
		.def = "1",
		.minval = 1,
		.maxval = 64,
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

static struct basalt_fio_raw_options raw_options(struct thread_data *td)
{
	struct basalt_options *o = td->eo;
	struct basalt_fio_raw_options r = {
		.mds = o->mds,
		.volume = o->volume,
		.transport = o->transport,
		.busy_poll = o->busy_poll,
		.runtime_threads = o->runtime_threads,
	};
	return r;
}

/* Runs in the parent process: validate the options and learn the volume size. No threads. */
static int basalt_setup(struct thread_data *td)
{
	struct basalt_fio_raw_options r = raw_options(td);
	struct fio_file *f;
	unsigned int i;
	uint64_t size = 0;
	char err[512];

	if (basalt_fio_probe(&r, &size, err, sizeof(err))) {
		log_err("fio: basalt: %s\n", err);
		return 1;
	}
	if (!td->files_index) {
		add_file(td, td->o.filename ?: "basalt", 0, 0);
		td->o.nr_files = td->o.nr_files ?: 1;
		td->o.open_files++;
	}
	for_each_file(td, f, i) {
		f->real_file_size = size;
		fio_file_set_size_known(f);
	}
	return 0;
}

/* Runs in the job process (after fork) or thread: create the Rust engine state. */
static int basalt_init(struct thread_data *td)
{
	struct basalt_fio_raw_options r = raw_options(td);
	char err[512];
	void *eng = basalt_fio_init(&r, td->o.iodepth, err, sizeof(err));

	if (!eng) {
		log_err("fio: basalt: %s\n", err);
		return 1;
	}
	td->io_ops_data = eng;
	return 0;
}

static enum fio_q_status basalt_queue(struct thread_data *td, struct io_u *io_u)
{
	int e;

	fio_ro_check(td, io_u);
	e = basalt_fio_queue(td->io_ops_data, io_u, io_u->ddir, io_u->offset,
			     io_u->xfer_buf, io_u->xfer_buflen);
	if (e) {
		io_u->error = e;
		io_u->resid = io_u->xfer_buflen;
		return FIO_Q_COMPLETED;
	}
	return FIO_Q_QUEUED;
}

/* Operations start in queue(); nothing is held back for commit. */
static int basalt_commit(struct thread_data *td)
{
	(void)td;
	return 0;
}

static int basalt_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			    const struct timespec *t)
{
	int64_t timeout_ns = -1;

	if (t)
		timeout_ns = (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
	return basalt_fio_getevents(td->io_ops_data, min, max, timeout_ns);
}

static struct io_u *basalt_event(struct thread_data *td, int event)
{
	const void *data = NULL;
	uint64_t data_len = 0, resid = 0;
	unsigned int error = 0;
	struct io_u *io_u = basalt_fio_event(td->io_ops_data, event, &data, &data_len,
					     &error, &resid);

	if (!io_u)
		return NULL;
	if (data && data_len <= io_u->xfer_buflen)
		memcpy(io_u->xfer_buf, data, data_len);
	io_u->error = error;
	io_u->resid = resid;
	return io_u;
}

static void basalt_cleanup(struct thread_data *td)
{
	if (td->io_ops_data) {
		basalt_fio_cleanup(td->io_ops_data);
		td->io_ops_data = NULL;
	}
}

static int basalt_open_file(struct thread_data *td, struct fio_file *f)
{
	(void)f;
	return basalt_fio_open_file(td->io_ops_data);
}

static int basalt_close_file(struct thread_data *td, struct fio_file *f)
{
	(void)f;
	return basalt_fio_close_file(td->io_ops_data);
}

/* fio writes ->dlhandle into the ops, so they are not const. */
static struct ioengine_ops ops = {
	.name = "basalt",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_MEMALIGN,
	.setup = basalt_setup,
	.init = basalt_init,
	.queue = basalt_queue,
	.commit = basalt_commit,
	.getevents = basalt_getevents,
	.event = basalt_event,
	.cleanup = basalt_cleanup,
	.open_file = basalt_open_file,
	.close_file = basalt_close_file,
	.option_struct_size = sizeof(struct basalt_options),
	.options = options,
};

/* For get_ioengine (Rust). */
void *basalt_fio_c_ops(void)
{
	return &ops;
}

/*
 * The version string of the fio we run in (fio exports fio_version_string), or NULL
 * outside fio. Looked up at run time so that the guard reads the binary's string, not a
 * copy fixed at build time.
 */
const char *basalt_fio_runtime_version(void)
{
	return dlsym(RTLD_DEFAULT, "fio_version_string");
}

/* The version of the fio source the engine was compiled against. */
const char *basalt_fio_headers_version(void)
{
	return BASALT_FIO_HEADERS_VERSION;
}
