#include "proto.h"

#include <string.h>

static const struct {
	const char *name;
	enum rpc_method m;
} methods[] = {
	{ "ping", RPC_PING }, { "info", RPC_INFO }, { "exec", RPC_EXEC },
	{ "stdin", RPC_STDIN }, { "kill", RPC_KILL }, { "list", RPC_LIST },
};

static enum rpc_method
lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].m;
	}
	return RPC_METHOD_UNKNOWN;
}

enum rpc_dialect
rpc_proto_guess(const char *text, size_t len)
{
	static const char key[] = "\"jsonrpc\"";
	for (size_t i = 0; i + sizeof(key) - 1 <= len; i++) {
		if (memcmp(text + i, key, sizeof(key) - 1) == 0)
			return RPC_JSONRPC;
	}
	/* a batch is an array: only JSON-RPC has those */
	while (len && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')) {
		text++;
		len--;
	}
	return len && *text == '[' ? RPC_JSONRPC : RPC_TYPE;
}

static bool
id_valid(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id) || json_is_real(id);
}

bool
rpc_proto_request(json_t *msg, enum rpc_dialect dialect, struct rpc_request *req,
		  enum rpc_error *err, const char **detail)
{
	*req = (struct rpc_request){ .dialect = dialect, .method = RPC_METHOD_UNKNOWN };
	*detail = NULL;
	if (!json_is_object(msg)) {
		*err = RPC_E_INVALID;
		return false;
	}
	if (dialect == RPC_TYPE) {
		json_t *id = json_object_get(msg, "id");
		json_t *type = json_object_get(msg, "type");
		if (id && id_valid(id))
			req->id = id;
		if (!json_is_string(type) || (id && !id_valid(id))) {
			*err = RPC_E_INVALID;
			return false;
		}
		req->name = json_string_value(type);
		req->params = msg;
	} else {
		json_t *id = json_object_get(msg, "id");
		json_t *ver = json_object_get(msg, "jsonrpc");
		json_t *method = json_object_get(msg, "method");
		json_t *params = json_object_get(msg, "params");
		if (id && (id_valid(id) || json_is_null(id)))
			req->id = id;
		if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
		    !json_is_string(method) || (id && !id_valid(id) && !json_is_null(id)) ||
		    (params && !json_is_object(params) && !json_is_array(params))) {
			req->id = req->id ? req->id : NULL;
			*err = RPC_E_INVALID;
			return false;
		}
		req->notification = id == NULL;
		req->name = json_string_value(method);
		if (params && json_is_array(params)) {
			*err = RPC_E_PARAMS;
			*detail = "params must be an object";
			return false;
		}
		req->params = params ? params : NULL;
	}
	req->method = lookup(req->name);
	if (req->method == RPC_METHOD_UNKNOWN) {
		*err = RPC_E_METHOD;
		*detail = req->name;
		return false;
	}
	return true;
}

static const struct {
	int code;
	const char *text;    /* the `type` dialect's phrase, the Sandbox example's */
	const char *message; /* JSON-RPC's message */
} errors[] = {
	[RPC_E_PARSE] = { -32700, "Invalid JSON", "Parse error" },
	[RPC_E_INVALID] = { -32600, "Invalid message format", "Invalid Request" },
	[RPC_E_METHOD] = { -32601, "Unknown message type", "Method not found" },
	[RPC_E_PARAMS] = { -32602, "Invalid params", "Invalid params" },
	[RPC_E_POLICY] = { -32004, "Invalid command", "Invalid command" },
	[RPC_E_RATE] = { -32000, "Rate limit exceeded", "Rate limit exceeded" },
	[RPC_E_TOO_MANY] = { -32001, "Too many running commands", "Too many running commands" },
	[RPC_E_DUPLICATE] = { -32002, "Duplicate id", "Duplicate id" },
	[RPC_E_NO_SUCH] = { -32003, "No such command", "No such command" },
	[RPC_E_INTERNAL] = { -32603, "Internal error", "Internal error" },
};

json_t *
rpc_proto_error(enum rpc_dialect d, json_t *id, enum rpc_error e, const char *detail)
{
	if (d == RPC_TYPE) {
		json_t *o = json_pack("{s:s}", "type", "error");
		if (id)
			json_object_set(o, "id", id);
		json_object_set_new(o, "error",
				    detail && e != RPC_E_POLICY
					    ? json_sprintf("%s: %s", errors[e].text, detail)
					    : json_string(errors[e].text));
		return o;
	}
	json_t *err = json_pack("{s:i, s:s}", "code", errors[e].code, "message", errors[e].message);
	if (detail)
		json_object_set_new(err, "data", json_string(detail));
	json_t *o = json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id, "error", err);
	if (!id)
		json_object_set_new(o, "id", json_null());
	return o;
}

json_t *
rpc_proto_reply(enum rpc_dialect d, const char *type, json_t *id, json_t *result)
{
	if (d == RPC_JSONRPC) {
		json_t *o = json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
		if (!id)
			json_object_set_new(o, "id", json_null());
		return o;
	}
	json_t *o = json_pack("{s:s}", "type", type);
	if (id)
		json_object_set(o, "id", id);
	json_object_update(o, result);
	json_decref(result);
	return o;
}

json_t *
rpc_proto_event(enum rpc_dialect d, const char *type, const char *method, json_t *id,
		json_t *fields)
{
	if (d == RPC_TYPE)
		return rpc_proto_reply(d, type, id, fields);
	json_t *params = json_object();
	if (id)
		json_object_set(params, "id", id);
	json_object_update(params, fields);
	json_decref(fields);
	return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params);
}
