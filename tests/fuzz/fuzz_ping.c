/*
 * ws-rpc's own parser for pings (rpc_proto_fast_ping), checked against the
 * full parse it stands in for: whatever it accepts, jansson must read as a
 * valid ping request of the same dialect and id (rpc_proto_request), and
 * the pong it writes must be the bytes jansson writes for the reply
 * rpc_proto_reply() builds from jansson's reading. What it refuses
 * takes the full parse in the server, so refusing is always safe.
 */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ID 128

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_fast_ping p;
	if (!rpc_proto_fast_ping((const char *)data, size, &p))
		return 0;
	json_t *msg = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	assert(json_is_object(msg));
	/* the server's choice of dialect (rpc_session_message) */
	enum rpc_dialect d = json_object_get(msg, "jsonrpc") ? RPC_JSONRPC : RPC_TYPE;
	assert(d == p.dialect);
	struct rpc_request r;
	enum rpc_error e;
	const char *detail;
	assert(rpc_proto_request(msg, d, MAX_ID, &r, &e, &detail));
	assert(r.method == RPC_PING && !r.notification);
	assert((r.id != NULL) == p.has_id);
	if (r.id)
		assert(json_is_integer(r.id) && (uint64_t)json_integer_value(r.id) == p.id);
	/* the reply as jansson builds it from its reading, the slow path's */
	uint64_t ts = (uint64_t)size * 1000003u;
	json_t *o = rpc_proto_reply(d, "pong", r.id,
				    json_pack("{s:I}", "timestamp", (json_int_t)ts));
	char *a = json_dumps(o, JSON_COMPACT);
	char b[256];
	size_t nb = rpc_proto_fast_pong(&p, ts, b, sizeof(b));
	assert(a && nb == strlen(a) && memcmp(a, b, nb) == 0);
	free(a);
	json_decref(o);
	json_decref(msg);
	return 0;
}
