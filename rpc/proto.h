/*
 * proto: the wire side of ws-rpc. One text message is either the Sandbox
 * example's `type` object or JSON-RPC 2.0 (an object with "jsonrpc":"2.0",
 * or a batch array). This module turns it into requests and builds every
 * reply, error and event in the dialect the request came in.
 */
#ifndef RPC_PROTO_H
#define RPC_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rpc_dialect {
	RPC_TYPE,    /* {"type":"exec","id":1,...} */
	RPC_JSONRPC, /* {"jsonrpc":"2.0","method":"exec","params":{...},"id":1} */
};

enum rpc_method {
	RPC_PING,
	RPC_INFO,
	RPC_EXEC,
	RPC_STDIN,
	RPC_KILL,
	RPC_LIST,
	RPC_ATTACH, /* watch a kept process from an offset */
	RPC_DETACH,
	RPC_RESIZE, /* a terminal's window size */
	RPC_METHOD_UNKNOWN,
};

enum rpc_error {
	RPC_E_PARSE,     /* Invalid JSON / -32700 */
	RPC_E_INVALID,   /* Invalid message format / -32600 */
	RPC_E_METHOD,    /* Unknown message type: T / -32601 */
	RPC_E_PARAMS,    /* Invalid params: WHAT / -32602 */
	RPC_E_POLICY,    /* Invalid command / -32004 */
	RPC_E_RATE,      /* Rate limit exceeded / -32000 */
	RPC_E_TOO_MANY,  /* Too many running commands / -32001 */
	RPC_E_DUPLICATE, /* Duplicate id / -32002 */
	RPC_E_NO_SUCH,   /* No such command: X / -32003 */
	RPC_E_INTERNAL,  /* Internal error: WHAT / -32603 */
};

struct rpc_request {
	enum rpc_dialect dialect;
	enum rpc_method method;
	const char *name;  /* the type or method as sent */
	json_t *id;        /* borrowed; NULL when absent */
	json_t *params;    /* borrowed object: the message itself (type) or params */
	bool notification; /* JSON-RPC without id: no reply at all */
};

/*
 * Validates one parsed element into *req. An id is a number or a string of
 * at most max_id bytes. Returns true when it is a request; otherwise fills
 * *err / *detail for the error reply (with req->dialect and req->id set as
 * far as they could be read).
 */
bool rpc_proto_request(json_t *msg, enum rpc_dialect dialect, size_t max_id,
		       struct rpc_request *req, enum rpc_error *err, const char **detail);

/* Whether id is a valid request id (a number, or a string of at most max_id bytes). */
bool rpc_proto_id_valid(const json_t *id, size_t max_id);

/*
 * How many elements the top-level array in text has, counted without
 * parsing (a parse costs far more: a batch is refused before it), stopping
 * once past `stop`. 0 when text is not an array.
 */
size_t rpc_proto_batch_size(const char *text, size_t len, size_t stop);

/* Which dialect a message that is not valid JSON most likely meant. */
enum rpc_dialect rpc_proto_guess(const char *text, size_t len);

/* {"type":"error","id":..,"error":MSG} or {"jsonrpc":"2.0","id":..,"error":{code,message,data}}. */
json_t *rpc_proto_error(enum rpc_dialect d, json_t *id, enum rpc_error e, const char *detail);

/*
 * A reply: for `type`, the fields of result merged into {"type":type,"id":id};
 * for JSON-RPC, {"jsonrpc":"2.0","id":id,"result":result}. Steals result.
 */
/* A signal as results report it: "SIGTERM", its number when unnamed, null for 0 (a new value). */
json_t *rpc_proto_signal(int sig);
json_t *rpc_proto_reply(enum rpc_dialect d, const char *type, json_t *id, json_t *result);

/*
 * The pong rpc_proto_reply(d, "pong", id, {"timestamp": ts}) would make,
 * written as JSON text straight into out: no objects built, nothing
 * allocated. Returns its length, or 0 when it does not fit in cap.
 */
size_t rpc_proto_pong(enum rpc_dialect d, json_t *id, uint64_t ts, char *out, size_t cap);

/*
 * The most frequent request, recognised without a JSON parse: exactly
 * {"type":"ping"} or {"type":"ping","id":N}, or JSON-RPC's
 * {"jsonrpc":"2.0","method":"ping","id":N}, keys in any order, JSON's
 * whitespace anywhere, N a non-negative integer of at most 18 digits.
 * Anything else (an escape, another key or one twice, a string or
 * fractional id, params) returns false and takes the full parse, which
 * answers it as before: for what this accepts, the reply is the one
 * rpc_proto_request() and rpc_proto_pong() would give (tests/fuzz/fuzz_ping
 * checks this against jansson).
 */
struct rpc_fast_ping {
	enum rpc_dialect dialect;
	bool has_id; /* always, for JSON-RPC */
	uint64_t id;
};
bool rpc_proto_fast_ping(const char *text, size_t len, struct rpc_fast_ping *out);
/* rpc_proto_pong() for a ping read by rpc_proto_fast_ping(). */
size_t rpc_proto_fast_pong(const struct rpc_fast_ping *p, uint64_t ts, char *out, size_t cap);

/*
 * An event about request id: for `type`, fields merged into {"type":type,"id":id};
 * for JSON-RPC, the notification {"jsonrpc":"2.0","method":method,"params":{id,...}}.
 * Steals fields.
 */
json_t *rpc_proto_event(enum rpc_dialect d, const char *type, const char *method, json_t *id,
			json_t *fields);

/*
 * The text of an exec result whose stdout and stderr are already the
 * insides of JSON strings (rpc_encode_json, or base64): the reply is written
 * around them, not built as a json_t, so a large output is copied once.
 * `rest` holds the other fields (exitCode, ...) and is stolen. Returns a
 * malloc'd text (its length in *len), or NULL when out of memory.
 */
char *rpc_proto_result(enum rpc_dialect d, json_t *id, const char *out, size_t out_len,
		       const char *err, size_t err_len, json_t *rest, size_t *len);

#endif
