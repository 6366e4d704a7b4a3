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
 * With a TABLE file (benchmarks/scenarios/internet.py), the delay depends on the far end:
 * each line is "ADDRESS PORT DELAY_MS", the address and port of the namespace's side of a
 * connection (a server, or a closed port); a packet to or from that endpoint is held for its
 * delay, any other packet DELAY_MS. Then the first 40 bytes of each packet are copied
 * (NFQNL_COPY_PACKET) to read its IPv4 addresses and TCP ports, and there is one FIFO per
 * distinct delay (packets of one delay still fall due in arrival order); the FIFO whose head
 * is due first is released first, one verdict per packet, since the ids of different FIFOs
 * interleave.
 *
 * usage: nfq_delay QUEUE DELAY_MS MAX_SECONDS [TABLE]
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

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MAX_CLASSES 128
#define CLASS_RING (1u << 14)
#define TABLE_SLOTS 8192 /* open addressing, power of two */

static uint32_t ids[RING];
static uint64_t due[RING];
static uint64_t head, tail_; /* head: next to release; tail_: next free */
static uint64_t delay_ns, packets, max_held, overflow;
static volatile sig_atomic_t stop;

/* Per-destination mode (a TABLE was given). */
static int per_destination;
static uint64_t class_delay[MAX_CLASSES];
static uint32_t class_ids[MAX_CLASSES][CLASS_RING];
static uint64_t class_due[MAX_CLASSES][CLASS_RING];
static uint64_t class_head[MAX_CLASSES], class_tail[MAX_CLASSES];
static int classes;
static uint64_t table_key[TABLE_SLOTS]; /* (address << 16 | port) + 1; 0: empty */
static int table_class[TABLE_SLOTS];
static uint64_t unmatched;
static uint64_t held_now;

static uint64_t key_of(uint32_t address, uint16_t port) {
    return (((uint64_t)address << 16) | port) + 1;
}

static int table_find(uint64_t key) {
    uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 51; /* 13 bits */
    for (int n = 0; n < TABLE_SLOTS; n++, i = (i + 1) & (TABLE_SLOTS - 1)) {
        if (table_key[i] == key) return table_class[i];
        if (table_key[i] == 0) return -1;
    }
    return -1;
}

static int class_for(uint64_t ns) {
    for (int c = 0; c < classes; c++)
        if (class_delay[c] == ns) return c;
    if (classes == MAX_CLASSES) return -1;
    class_delay[classes] = ns;
    return classes++;
}

static int load_table(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) { perror(path); return -1; }
    char address[64];
    unsigned port;
    double ms;
    int entries = 0;
    while (fscanf(f, "%63s %u %lf", address, &port, &ms) == 3) {
        struct in_addr a;
        if (inet_pton(AF_INET, address, &a) != 1 || port > 65535 || ms < 0) {
            fprintf(stderr, "nfq_delay: bad table line: %s %u %f\n", address, port, ms);
            fclose(f);
            return -1;
        }
        int c = class_for((uint64_t)(ms * 1e6));
        if (c < 0 || entries >= TABLE_SLOTS / 2) {
            fprintf(stderr, "nfq_delay: table too large\n");
            fclose(f);
            return -1;
        }
        uint64_t key = key_of(ntohl(a.s_addr), (uint16_t)port);
        uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 51;
        while (table_key[i] != 0 && table_key[i] != key) i = (i + 1) & (TABLE_SLOTS - 1);
        table_key[i] = key;
        table_class[i] = c;
        entries++;
    }
    fclose(f);
    return entries;
}

/* The class of a packet: by its destination endpoint, else its source, else the default. */
static int classify(struct nfq_data *nfa) {
    unsigned char *data;
    int len = nfq_get_payload(nfa, &data);
    if (len < 20 || (data[0] >> 4) != 4 || data[9] != 6) return 0;
    int ihl = (data[0] & 0x0f) * 4;
    if (len < ihl + 4) return 0;
    uint32_t src = ((uint32_t)data[12] << 24) | ((uint32_t)data[13] << 16) |
                   ((uint32_t)data[14] << 8) | data[15];
    uint32_t dst = ((uint32_t)data[16] << 24) | ((uint32_t)data[17] << 16) |
                   ((uint32_t)data[18] << 8) | data[19];
    uint16_t sport = (uint16_t)((data[ihl] << 8) | data[ihl + 1]);
    uint16_t dport = (uint16_t)((data[ihl + 2] << 8) | data[ihl + 3]);
    int c = table_find(key_of(dst, dport));
    if (c < 0) c = table_find(key_of(src, sport));
    if (c < 0) { unmatched++; return 0; }
    return c;
}

static int on_packet_per_destination(struct nfq_q_handle *qh, struct nfgenmsg *msg,
                                     struct nfq_data *nfa, void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL) return 0;
    uint32_t id = ntohl(ph->packet_id);
    packets++;
    int c = classify(nfa);
    if (class_tail[c] - class_head[c] >= CLASS_RING) {
        overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    class_ids[c][class_tail[c] % CLASS_RING] = id;
    class_due[c][class_tail[c] % CLASS_RING] = now_ns() + class_delay[c];
    class_tail[c]++;
    if (++held_now > max_held) max_held = held_now;
    return 0;
}

/* The earliest due time of any class head (UINT64_MAX: nothing held). */
static uint64_t next_due_per_destination(void) {
    uint64_t best = UINT64_MAX;
    for (int c = 0; c < classes; c++)
        if (class_head[c] < class_tail[c] && class_due[c][class_head[c] % CLASS_RING] < best)
            best = class_due[c][class_head[c] % CLASS_RING];
    return best;
}

static void release_per_destination(struct nfq_q_handle *qh, uint64_t until) {
    for (int c = 0; c < classes; c++) {
        while (class_head[c] < class_tail[c] && class_due[c][class_head[c] % CLASS_RING] <= until) {
            nfq_set_verdict(qh, class_ids[c][class_head[c] % CLASS_RING], NF_ACCEPT, 0, NULL);
            class_head[c]++;
            held_now--;
        }
    }
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
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s QUEUE DELAY_MS MAX_SECONDS [TABLE]\n", argv[0]);
        return 2;
    }
    int queue = atoi(argv[1]);
    delay_ns = (uint64_t)(atof(argv[2]) * 1e6);
    int entries = 0;
    if (argc == 5) {
        per_destination = 1;
        class_for(delay_ns); /* class 0: the default */
        entries = load_table(argv[4]);
        if (entries < 0) return 2;
    }
    uint64_t end = now_ns() + (uint64_t)(atof(argv[3]) * 1e9);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct nfq_handle *h = nfq_open();
    if (h == NULL) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(
        h, (uint16_t)queue, per_destination ? &on_packet_per_destination : &on_packet, NULL);
    if (qh == NULL) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, per_destination ? NFQNL_COPY_PACKET : NFQNL_COPY_META, 40) < 0) {
        perror("nfq_set_mode");
        return 1;
    }
    nfq_set_queue_maxlen(qh, 200000);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 64 * 1024 * 1024);
    int fd = nfq_fd(h);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    if (per_destination)
        fprintf(stderr, "nfq_delay: queue %d, %d endpoints, %d delays, default %.1f ms\n", queue,
                entries, classes, delay_ns / 1e6);
    else
        fprintf(stderr, "nfq_delay: queue %d, %.1f ms\n", queue, delay_ns / 1e6);
    fflush(stderr);

    static char buf[1 << 16];
    uint64_t enobufs = 0;
    while (!stop && now_ns() < end) {
        uint64_t t = now_ns();
        int timeout_ms = 100;
        uint64_t d = per_destination ? next_due_per_destination()
                                     : (head < tail_ ? due[head % RING] : UINT64_MAX);
        if (d != UINT64_MAX) timeout_ms = d > t ? (int)((d - t + 999999) / 1000000) : 0;
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
        if (per_destination)
            release_per_destination(qh, now_ns());
        else
            release(qh, now_ns());
    }
    if (per_destination)
        release_per_destination(qh, UINT64_MAX);
    else
        release(qh, UINT64_MAX);
    fprintf(stderr,
            "nfq_delay: packets=%llu max_held=%llu overflow=%llu enobufs=%llu unmatched=%llu\n",
            (unsigned long long)packets, (unsigned long long)max_held,
            (unsigned long long)overflow, (unsigned long long)enobufs,
            (unsigned long long)unmatched);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
