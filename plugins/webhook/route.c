#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int s_same_selector(const wh_endpoint_t *a, const wh_endpoint_t *b)
{
    if (!!a->ticket != !!b->ticket || !!a->project != !!b->project)
        return 0;
    return (!a->ticket || s_eq(a->ticket, b->ticket)) &&
           (!a->project || s_eq(a->project, b->project));
}

int wh_routes_check(const wh_routes_t *r, const char **setting, char *why,
                    size_t whysz)
{
    for (size_t i = 0; i < r->n; i++) {
        const wh_endpoint_t *a = &r->eps[i];
        if (!a->project && !a->ticket)
            continue;
        for (size_t j = 0; j < i; j++) {
            const wh_endpoint_t *b = &r->eps[j];
            if (!s_same_selector(a, b) || a->replace == b->replace)
                continue;
            *setting = a->setting;
            snprintf(why, whysz,
                     "mode \"%s\" disagrees with %s (\"%s\") for the same "
                     "%s%s%s%s: routes of one selector share one mode",
                     a->replace ? "replace" : "add", b->setting,
                     b->replace ? "replace" : "add",
                     a->ticket ? "ticket " : "project ",
                     a->ticket ? a->ticket : a->project,
                     a->ticket && a->project ? " of project " : "",
                     a->ticket && a->project ? a->project : "");
            return -1;
        }
    }
    return 0;
}

/* A ticket route applies when its ticket (and project, if it names one)
 * match; a project route when its project matches. */
static int s_ticket_route_applies(const wh_endpoint_t *ep, const char *project,
                                  const char *ticket)
{
    return ep->ticket && s_eq(ep->ticket, ticket) &&
           (!ep->project || s_eq(ep->project, project));
}

static int s_project_route_applies(const wh_endpoint_t *ep,
                                   const char *project)
{
    return !ep->ticket && ep->project && s_eq(ep->project, project);
}

size_t wh_route_select(const wh_routes_t *r, const char *type,
                       const char *project, const char *ticket,
                       evb_attr_fn attr, const void *ctx, size_t *out)
{
    /* which levels have routes for this event, and their modes */
    int has_project = 0, replace_project = 0;
    int has_ticket = 0, replace_ticket = 0;
    for (size_t i = 0; i < r->n; i++) {
        const wh_endpoint_t *ep = &r->eps[i];
        if (s_ticket_route_applies(ep, project, ticket)) {
            has_ticket = 1;
            replace_ticket = ep->replace;
        } else if (s_project_route_applies(ep, project)) {
            has_project = 1;
            replace_project = ep->replace;
        }
    }
    int globals = !(has_ticket && replace_ticket) &&
                  !(has_project && replace_project);
    int projects = has_project && !(has_ticket && replace_ticket);

    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const wh_endpoint_t *ep = &r->eps[i];
        int in;
        if (ep->ticket)
            in = s_ticket_route_applies(ep, project, ticket);
        else if (ep->project)
            in = projects && s_project_route_applies(ep, project);
        else
            in = globals;
        if (in && evb_sub_matches_attrs(&ep->sub, type, attr, ctx))
            out[n++] = i;
    }
    return n;
}

void wh_endpoint_clear(wh_endpoint_t *ep)
{
    free(ep->setting);
    free(ep->label);
    free(ep->url);
    evb_sub_clear(&ep->sub);
    free(ep->project);
    free(ep->ticket);
    for (size_t i = 0; i < ep->n_keys; i++)
        wh_key_free(&ep->keys[i]);
    free(ep->sig_header);
    free(ep->ts_header);
    for (size_t i = 0; i < ep->n_headers; i++)
        free(ep->headers[i]);
    free(ep->headers);
    memset(ep, 0, sizeof *ep);
}
