#include "router.h"

#include "topic.h"

int evb_router_accept(evb_router_t *r, evb_event_t *ev, evb_reject_t *why)
{
    (void)why;
    ev->seq = ++r->next_seq;
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_t *inst = r->instances[i];
        if (evb_sub_matches(&inst->conf->sub, ev))
            evb_instance_push(inst, ev);
    }
    return 0;
}

int evb_router_kick(evb_router_t *r)
{
    int most = 0;
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_kick(r->instances[i]);
        int held = atomic_load_explicit(&r->instances[i]->held,
                                        memory_order_relaxed);
        if (held > most)
            most = held;
    }
    return most;
}

void evb_router_reopen(evb_router_t *r)
{
    for (size_t i = 0; i < r->n_instances; i++)
        evb_instance_request_reopen(r->instances[i]);
}
