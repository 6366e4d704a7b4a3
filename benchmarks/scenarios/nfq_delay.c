/* nfq_delay: hold every packet of one NFQUEUE for a fixed time, then accept it.
 *
 * Used by benchmarks/scenarios/latency.py (built there with `cc -O2 ... -lnetfilter_queue -lnfnetlink`),
 * inside a network namespace the benchmark created, with iptables rules that queue the TCP
 * packets of one veth in both directions: a fixed delay each way gives a true round trip,
 * SYN included, without `tc netem`.
 *
 * Every packet gets the same delay, so the packets fall due in the order they arrived, which
 * is the order of their queue ids: a FIFO of (id, due time) is enough, and one batch verdict
 * ("accept every id up to N") releases all the packets that are due. Only metadata is copied
 * from the kernel (NFQNL_COPY_META), so the program does little work per packet.
 *
 * usage: nfq_delay QUEUE DELAY_MS MAX_SECONDS
 * Exits after MAX_SECONDS, on SIGTERM/SIGINT, or when its parent dies, accepting what it still
 * holds; prints counters to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING (1u << 20)

static uint32_t ids[RING];
static uint64_t due[RING];
static uint64_t head, tail_; /* head: next to release; tail_: next free */
static uint64_t delay_ns, packets, max_held, overflow;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL) return 0;
    uint32_t id = ntohl(ph->packet_id);
    packets++;
    if (tail_ - head >= RING) { /* cannot hold it: let it through now */
        overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ids[tail_ % RING] = id;
    due[tail_ % RING] = now_ns() + delay_ns;
    tail_++;
    if (tail_ - head > max_held) max_held = tail_ - head;
    return 0;
}

static void release(struct nfq_q_handle *qh, uint64_t until) {
    uint64_t last = head;
    while (head < tail_ && due[head % RING] <= until) head++;
    if (head != last) nfq_set_verdict_batch(qh, ids[(head - 1) % RING], NF_ACCEPT);
}

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s QUEUE DELAY_MS MAX_SECONDS\n", argv[0]);
        return 2;
    }
    int queue = atoi(argv[1]);
    delay_ns = (uint64_t)(atof(argv[2]) * 1e6);
    uint64_t end = now_ns() + (uint64_t)(atof(argv[3]) * 1e9);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct nfq_handle *h = nfq_open();
    if (h == NULL) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, &on_packet, NULL);
    if (qh == NULL) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(qh, 200000);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 64 * 1024 * 1024);
    int fd = nfq_fd(h);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    fprintf(stderr, "nfq_delay: queue %d, %.1f ms\n", queue, delay_ns / 1e6);
    fflush(stderr);

    static char buf[1 << 16];
    uint64_t enobufs = 0;
    while (!stop && now_ns() < end) {
        uint64_t t = now_ns();
        int timeout_ms = 100;
        if (head < tail_) {
            uint64_t d = due[head % RING];
            timeout_ms = d > t ? (int)((d - t + 999999) / 1000000) : 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r > 0) {
            for (int k = 0; k < 512; k++) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0) {
                    if (errno == ENOBUFS) { enobufs++; continue; }
                    break;
                }
                nfq_handle_packet(h, buf, (int)n);
            }
        }
        release(qh, now_ns());
    }
    release(qh, UINT64_MAX);
    fprintf(stderr, "nfq_delay: packets=%llu max_held=%llu overflow=%llu enobufs=%llu\n",
            (unsigned long long)packets, (unsigned long long)max_held,
            (unsigned long long)overflow, (unsigned long long)enobufs);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
