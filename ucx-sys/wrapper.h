/* The part of the UCX API that Basalt binds (see regen-bindings.sh). */
#include <ucp/api/ucp.h>
#include <ucs/type/status.h>
