#include "stats.h"

evb_stats_t evb_stats;

const char *evb_ingress_name(evb_ingress_t in)
{
    return in == EVB_INGRESS_PUB ? "pub" : in == EVB_INGRESS_ACK ? "ack" : "?";
}
