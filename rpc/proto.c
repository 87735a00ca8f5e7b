#define _GNU_SOURCE /* sigabbrev_np */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum rpc_method m;
} methods[] = {
	{ "ping", RPC_PING },     { "info", RPC_INFO },     { "exec", RPC_EXEC },
	{ "stdin", RPC_STDIN },   { "kill", RPC_KILL },     { "list", RPC_LIST },
	{ "attach", RPC_ATTACH }, { "detach", RPC_DETACH }, { "resize", RPC_RESIZE },
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

size_t
rpc_proto_batch_size(const char *text, size_t len, size_t stop)
{
	size_t i = 0, n = 0, depth = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i == len || text[i] != '[')
		return 0;
	bool in_string = false, empty = true;
	for (; i < len && n <= stop; i++) {
		char ch = text[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		switch (ch) {
		case '"':
			in_string = true;
			break;
		case '[':
		case '{':
			depth++;
			break;
		case ']':
		case '}':
			if (depth-- == 1)
				return empty ? 0 : n + 1;
			break;
		case ',':
			if (depth == 1)
				n++;
			break;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			continue;
		}
		if (depth > 1 || (depth == 1 && ch != '['))
			empty = false;
	}
	return n + 1;
}

bool
rpc_proto_id_valid(const json_t *id, size_t max_id)
{
	return (json_is_string(id) && json_string_length(id) <= max_id) || json_is_integer(id) ||
	       json_is_real(id);
}

bool
rpc_proto_request(json_t *msg, enum rpc_dialect dialect, size_t max_id, struct rpc_request *req,
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
		if (id && rpc_proto_id_valid(id, max_id))
			req->id = id;
		if (!json_is_string(type) || (id && !rpc_proto_id_valid(id, max_id))) {
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
		if (id && (rpc_proto_id_valid(id, max_id) || json_is_null(id)))
			req->id = id;
		if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
		    !json_is_string(method) ||
		    (id && !rpc_proto_id_valid(id, max_id) && !json_is_null(id)) ||
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
		json_t *o = json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id, "result",
				      result);
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

/* Appends p[0..n) at *w when it fits before end. */
static bool
put_fit(char **w, const char *end, const char *p, size_t n)
{
	if ((size_t)(end - *w) < n)
		return false;
	memcpy(*w, p, n);
	*w += n;
	return true;
}

static bool
put_str(char **w, const char *end, const char *s)
{
	return put_fit(w, end, s, strlen(s));
}

/* A number's decimal digits, written backwards into the end of buf[24]: their count. */
static size_t
digits_of(uint64_t v, char buf[24])
{
	size_t n = 0;
	do {
		buf[24 - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return n;
}

/* A pong's text before its id: the id's key too when it has one (JSON-RPC always does). */
static bool
pong_head(char **w, const char *end, bool rpc, bool has_id)
{
	return put_str(w, end, rpc ? "{\"jsonrpc\":\"2.0\",\"id\":" : "{\"type\":\"pong\"") &&
	       (rpc || !has_id || put_str(w, end, ",\"id\":"));
}

static bool
pong_tail(char **w, const char *end, bool rpc, uint64_t ts)
{
	char digits[24];
	size_t nd = digits_of(ts, digits);
	return put_str(w, end, rpc ? ",\"result\":{\"timestamp\":" : ",\"timestamp\":") &&
	       put_fit(w, end, digits + sizeof(digits) - nd, nd) &&
	       put_str(w, end, rpc ? "}}" : "}");
}

size_t
rpc_proto_fast_pong(const struct rpc_fast_ping *p, uint64_t ts, char *out, size_t cap)
{
	char *w = out, *end = out + cap;
	bool rpc = p->dialect == RPC_JSONRPC;
	char idd[24];
	size_t ni = p->has_id ? digits_of(p->id, idd) : 0;
	if (!pong_head(&w, end, rpc, p->has_id) || !put_fit(&w, end, idd + sizeof(idd) - ni, ni) ||
	    !pong_tail(&w, end, rpc, ts))
		return 0;
	return (size_t)(w - out);
}

size_t
rpc_proto_pong(enum rpc_dialect d, json_t *id, uint64_t ts, char *out, size_t cap)
{
	/* the usual ids, none or a non-negative integer: their digits without snprintf */
	if ((!id && d == RPC_TYPE) || (json_is_integer(id) && json_integer_value(id) >= 0)) {
		struct rpc_fast_ping p = { d, id != NULL,
					   id ? (uint64_t)json_integer_value(id) : 0 };
		return rpc_proto_fast_pong(&p, ts, out, cap);
	}
	char *w = out, *end = out + cap;
	bool rpc = d == RPC_JSONRPC;
	if (!pong_head(&w, end, rpc, id != NULL))
		return 0;
	if (id) {
		size_t n = json_dumpb(id, w, (size_t)(end - w), JSON_ENCODE_ANY | JSON_COMPACT);
		if (n == 0 || n > (size_t)(end - w))
			return 0;
		w += n;
	} else if (rpc && !put_str(&w, end, "null")) {
		return 0;
	}
	if (!pong_tail(&w, end, rpc, ts))
		return 0;
	return (size_t)(w - out);
}

/* --- the ping's own parser ------------------------------------------------ */

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/*
 * A string of printable ASCII without escapes at p: its body in *s and *n,
 * and where it ends. NULL for anything else (jansson then decides).
 */
static const char *
plain_string(const char *p, const char *end, const char **s, size_t *n)
{
	if (p >= end || *p != '"')
		return NULL;
	const char *b = ++p;
	for (; p < end && *p != '"'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\\' || c < 0x20 || c >= 0x7f)
			return NULL;
	}
	if (p >= end)
		return NULL;
	*s = b;
	*n = (size_t)(p - b);
	return p + 1;
}

static bool
is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/*
 * A non-negative integer as JSON writes it (no sign, no leading zero, no
 * fraction or exponent) of at most 18 digits, so that it fits an int64
 * as jansson reads it. NULL for anything else.
 */
static const char *
plain_uint(const char *p, const char *end, uint64_t *v)
{
	const char *b = p;
	uint64_t x = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (p - b == 18)
			return NULL;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (p == b || (*b == '0' && p - b > 1) ||
	    (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
		return NULL;
	*v = x;
	return p;
}

bool
rpc_proto_fast_ping(const char *text, size_t len, struct rpc_fast_ping *out)
{
	enum { TYPE = 1, ID = 2, VERSION = 4, METHOD = 8 };
	const char *p = text, *end = text + len;
	unsigned seen = 0;
	uint64_t id = 0;
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return false;
	for (;;) {
		const char *k, *v;
		size_t kn, vn;
		p = plain_string(skip_ws(p, end), end, &k, &kn);
		if (!p)
			return false;
		p = skip_ws(p, end);
		if (p >= end || *p++ != ':')
			return false;
		p = skip_ws(p, end);
		unsigned key = is(k, kn, "type")      ? TYPE
			       : is(k, kn, "id")      ? ID
			       : is(k, kn, "jsonrpc") ? VERSION
			       : is(k, kn, "method")  ? METHOD
						      : 0;
		/* another key, or one twice (jansson keeps the last): the full parse */
		if (!key || (seen & key))
			return false;
		seen |= key;
		if (key == ID)
			p = plain_uint(p, end, &id);
		else if ((p = plain_string(p, end, &v, &vn)) &&
			 !is(v, vn, key == VERSION ? "2.0" : "ping"))
			return false;
		if (!p)
			return false;
		p = skip_ws(p, end);
		if (p >= end)
			return false;
		if (*p == '}')
			break;
		if (*p++ != ',')
			return false;
	}
	if (skip_ws(p + 1, end) != end)
		return false;
	/* {"type":"ping"[,"id":N]}, or {"jsonrpc":"2.0","method":"ping","id":N} */
	if (seen == TYPE || seen == (TYPE | ID))
		out->dialect = RPC_TYPE;
	else if (seen == (VERSION | METHOD | ID))
		out->dialect = RPC_JSONRPC;
	else
		return false;
	out->has_id = seen & ID;
	out->id = id;
	return true;
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

static void
put(char **w, const char *p, size_t len)
{
	memcpy(*w, p, len);
	*w += len;
}

char *
rpc_proto_result(enum rpc_dialect d, json_t *id, const char *out, size_t out_len, const char *err,
		 size_t err_len, json_t *rest, size_t *len)
{
	char *id_text = id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	char *rest_text = json_dumps(rest, JSON_COMPACT);
	json_decref(rest);
	char *text = NULL;
	if ((id && !id_text) || !rest_text || rest_text[0] != '{')
		goto done;
	/* the other fields, without their braces, follow stdout and stderr */
	const char *fields = rest_text + 1;
	size_t fields_len = strlen(fields) - 1;
	const char *head = d == RPC_TYPE ? "{\"type\":\"result\"" : "{\"jsonrpc\":\"2.0\"";
	const char *id_key = ",\"id\":";
	const char *open = d == RPC_TYPE ? ",\"stdout\":\"" : ",\"result\":{\"stdout\":\"";
	const char *mid = "\",\"stderr\":\"";
	const char *tail = d == RPC_TYPE ? "}" : "}}";
	const char *shown_id = id_text ? id_text : d == RPC_JSONRPC ? "null" : NULL;
	size_t n = strlen(head) + (shown_id ? strlen(id_key) + strlen(shown_id) : 0) +
		   strlen(open) + out_len + strlen(mid) + err_len + 2 + fields_len + strlen(tail);
	text = malloc(n + 1);
	if (!text)
		goto done;
	char *w = text;
	put(&w, head, strlen(head));
	if (shown_id) {
		put(&w, id_key, strlen(id_key));
		put(&w, shown_id, strlen(shown_id));
	}
	put(&w, open, strlen(open));
	if (out_len)
		put(&w, out, out_len);
	put(&w, mid, strlen(mid));
	if (err_len)
		put(&w, err, err_len);
	put(&w, fields_len ? "\"," : "\"", fields_len ? 2 : 1);
	put(&w, fields, fields_len);
	put(&w, tail, strlen(tail));
	*w = '\0';
	*len = (size_t)(w - text);
done:
	free(id_text);
	free(rest_text);
	return text;
}

json_t *
rpc_proto_signal(int sig)
{
	if (!sig)
		return json_null();
	const char *a = sigabbrev_np(sig);
	return a ? json_sprintf("SIG%s", a) : json_integer(sig);
}
