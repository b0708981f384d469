/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A C program using libbasalt_client through its generated header, as the fio engine
 * and other C callers do: writes a pattern with aio in queue mode, polls completions,
 * reads it back (queue and callback modes) and compares, and checks that NULL and
 * misaligned arguments are refused with the right codes.
 *
 * Usage: capi_smoke MDS_ADDR VOLUME CONFIG_FILE   (exit 0: pass; 1: fail, reason on stderr)
 * Run by client/tests/capi_c.rs.
 */
#include "basalt_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK (64 * 1024)
#define NBLOCKS 32
/* straddles the first chunk boundary (16 MiB) */
#define BASE (16 * 1024 * 1024 - 8 * BLOCK)

static int failures;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, " (last error: %s)\n", basalt_client_last_error());           \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

#define EXPECT_CODE(call, want)                                                           \
    do {                                                                                  \
        int got_ = (call);                                                                \
        CHECK(got_ == (want), "%s returned %d (%s), wanted %d", #call, got_,              \
              basalt_client_strerror(got_), (want));                                      \
    } while (0)

static unsigned char byte_at(uint64_t offset, int seed) {
    return (unsigned char)((offset * 31 + (offset >> 9) + (uint64_t)seed) & 0xff);
}

/* Poll until `n` completions arrived (bounded), storing them in `evs`. */
static int reap(basalt_cq_t *cq, basalt_client_event_t *evs, int n) {
    int got = 0;
    time_t deadline = time(NULL) + 20;
    while (got < n) {
        if (time(NULL) > deadline) {
            fprintf(stderr, "FAIL: only %d of %d completions\n", got, n);
            return got;
        }
        int r = basalt_client_poll(cq, evs + got, (uint32_t)(n - got), 100000);
        if (r < 0) {
            fprintf(stderr, "FAIL: poll: %s\n", basalt_client_strerror(r));
            return got;
        }
        got += r;
    }
    return got;
}

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int64_t result;
};

static void on_done(void *arg, int64_t result) {
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->result = result;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MDS_ADDR VOLUME CONFIG_FILE\n", argv[0]);
        return 2;
    }
    CHECK(basalt_client_abi_version() == BASALT_CLIENT_ABI_VERSION, "ABI version mismatch");
    CHECK(strlen(basalt_client_version()) > 0, "empty version");
    CHECK(strcmp(basalt_client_strerror(BASALT_CLIENT_EINVAL),
                 basalt_client_strerror(BASALT_CLIENT_ERANGE)) != 0,
          "distinct error strings");

    /* init: NULL out-pointer refused, bad transport refused, then a real client */
    basalt_client_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.mds = argv[1];
    cfg.config_file = argv[3];
    cfg.transport = BASALT_CLIENT_TRANSPORT_TCP;
    cfg.runtime_threads = 2;
    EXPECT_CODE(basalt_client_init(&cfg, NULL), BASALT_CLIENT_EINVAL);
    CHECK(strstr(basalt_client_last_error(), "NULL") != NULL, "last error names the NULL");
    basalt_client_t *client = NULL;
    cfg.transport = 99;
    EXPECT_CODE(basalt_client_init(&cfg, &client), BASALT_CLIENT_EINVAL);
    cfg.transport = BASALT_CLIENT_TRANSPORT_TCP;
    EXPECT_CODE(basalt_client_init(&cfg, &client), BASALT_CLIENT_OK);
    if (client == NULL)
        return 1;

    uint32_t sector = 0;
    EXPECT_CODE(basalt_client_sector_size(client, &sector), BASALT_CLIENT_OK);
    CHECK(sector == 512, "sector %u", sector);

    /* open: NULL name refused, missing volume is ENOENT */
    basalt_volume_t *vol = NULL;
    uint64_t size = 0;
    EXPECT_CODE(basalt_client_open(client, NULL, 0, &vol, &size), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_open(client, "no-such-volume", 0, &vol, &size),
                BASALT_CLIENT_ENOENT);
    EXPECT_CODE(basalt_client_open(client, argv[2], 0, &vol, &size), BASALT_CLIENT_OK);
    if (vol == NULL)
        return 1;
    CHECK(size >= (uint64_t)BASE + NBLOCKS * BLOCK, "volume too small: %llu",
          (unsigned long long)size);

    basalt_cq_t *cq = NULL;
    EXPECT_CODE(basalt_client_cq_create(&cq), BASALT_CLIENT_OK);

    /* write the pattern: NBLOCKS writes in flight at once, tagged by block number */
    unsigned char *wbuf = malloc((size_t)NBLOCKS * BLOCK);
    unsigned char *rbuf = malloc((size_t)NBLOCKS * BLOCK);
    for (uint64_t i = 0; i < (uint64_t)NBLOCKS * BLOCK; i++)
        wbuf[i] = byte_at(BASE + i, 7);
    for (int b = 0; b < NBLOCKS; b++) {
        basalt_client_completion_t done = {.cq = cq, .tag = 1000 + (uint64_t)b};
        EXPECT_CODE(basalt_client_aio_write(vol, BASE + (uint64_t)b * BLOCK,
                                            wbuf + (size_t)b * BLOCK, BLOCK, &done),
                    BASALT_CLIENT_OK);
    }
    basalt_client_event_t evs[NBLOCKS];
    int seen[NBLOCKS] = {0};
    int n = reap(cq, evs, NBLOCKS);
    CHECK(n == NBLOCKS, "write completions: %d", n);
    for (int i = 0; i < n; i++) {
        CHECK(evs[i].tag >= 1000 && evs[i].tag < 1000 + NBLOCKS, "bad tag %llu",
              (unsigned long long)evs[i].tag);
        CHECK(evs[i].result == BLOCK, "write tag %llu: %lld", (unsigned long long)evs[i].tag,
              (long long)evs[i].result);
        if (evs[i].tag >= 1000 && evs[i].tag < 1000 + NBLOCKS)
            seen[evs[i].tag - 1000]++;
    }
    for (int b = 0; b < NBLOCKS; b++)
        CHECK(seen[b] == 1, "block %d completed %d times", b, seen[b]);

    /* read it back in queue mode and compare */
    memset(rbuf, 0xee, (size_t)NBLOCKS * BLOCK);
    for (int b = 0; b < NBLOCKS; b++) {
        basalt_client_completion_t done = {.cq = cq, .tag = (uint64_t)b};
        EXPECT_CODE(basalt_client_aio_read(vol, BASE + (uint64_t)b * BLOCK,
                                           rbuf + (size_t)b * BLOCK, BLOCK, &done),
                    BASALT_CLIENT_OK);
    }
    n = reap(cq, evs, NBLOCKS);
    CHECK(n == NBLOCKS, "read completions: %d", n);
    for (int i = 0; i < n; i++)
        CHECK(evs[i].result == BLOCK, "read tag %llu: %lld", (unsigned long long)evs[i].tag,
              (long long)evs[i].result);
    CHECK(memcmp(wbuf, rbuf, (size_t)NBLOCKS * BLOCK) == 0, "read back differs from written");

    /* one read in callback mode, across the chunk boundary */
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    basalt_client_completion_t cb_done = {.cb = on_done, .arg = &w};
    memset(rbuf, 0, 2 * BLOCK);
    EXPECT_CODE(basalt_client_aio_read(vol, BASE + 7 * BLOCK, rbuf, 2 * BLOCK, &cb_done),
                BASALT_CLIENT_OK);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&w.lock);
    while (!w.done && pthread_cond_timedwait(&w.cond, &w.lock, &until) == 0)
        ;
    pthread_mutex_unlock(&w.lock);
    CHECK(w.done && w.result == 2 * BLOCK, "callback read: done %d result %lld", w.done,
          (long long)w.result);
    CHECK(memcmp(rbuf, wbuf + 7 * BLOCK, 2 * BLOCK) == 0, "callback read differs");

    /* refused synchronously, no completion */
    basalt_client_completion_t q = {.cq = cq, .tag = 9};
    EXPECT_CODE(basalt_client_aio_write(vol, 100, wbuf, BLOCK, &q), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_aio_write(vol, 0, wbuf, 1000, &q), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_aio_read(vol, 0, NULL, BLOCK, &q), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_aio_read(vol, 0, rbuf, BLOCK, NULL), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_aio_read(NULL, 0, rbuf, BLOCK, &q), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_aio_read(vol, size, rbuf, BLOCK, &q), BASALT_CLIENT_ERANGE);
    EXPECT_CODE(basalt_client_aio_discard(vol, 512, 3, &q), BASALT_CLIENT_EINVAL);
    basalt_client_completion_t none = {0};
    EXPECT_CODE(basalt_client_aio_flush(vol, &none), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_poll(cq, NULL, 4, 0), BASALT_CLIENT_EINVAL);
    EXPECT_CODE(basalt_client_poll(cq, evs, 4, 0), 0);

    /* discard a block; it reads as zeros */
    q.tag = 77;
    EXPECT_CODE(basalt_client_aio_discard(vol, BASE, BLOCK, &q), BASALT_CLIENT_OK);
    n = reap(cq, evs, 1);
    CHECK(n == 1 && evs[0].tag == 77 && evs[0].result == BLOCK, "discard completion");
    memset(rbuf, 0xee, BLOCK);
    EXPECT_CODE(basalt_client_aio_read(vol, BASE, rbuf, BLOCK, &q), BASALT_CLIENT_OK);
    n = reap(cq, evs, 1);
    CHECK(n == 1 && evs[0].result == BLOCK, "read after discard");
    for (int i = 0; i < BLOCK; i++)
        if (rbuf[i] != 0) {
            CHECK(0, "byte %d after discard is %d", i, rbuf[i]);
            break;
        }

    /* teardown order is enforced */
    EXPECT_CODE(basalt_client_shutdown(client), BASALT_CLIENT_EBUSY);
    EXPECT_CODE(basalt_client_close(vol), BASALT_CLIENT_OK);
    EXPECT_CODE(basalt_client_cq_destroy(cq), BASALT_CLIENT_OK);
    EXPECT_CODE(basalt_client_shutdown(client), BASALT_CLIENT_OK);
    free(wbuf);
    free(rbuf);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("capi_smoke: ok\n");
    return 0;
}
