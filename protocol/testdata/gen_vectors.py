# Generates vectors.json, the wire vectors shared by the Go and Python tests.
# Run from this folder: python3 gen_vectors.py. Review the diff before committing.
import json, struct
def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body
def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
V = []
def valid(name, direction, msg, note=""):
    V.append({"name": name, "direction": direction, "canonical": True, "frame_hex": frame(enc(msg)).hex(), "message": msg, "note": note})
def noncanon(name, direction, body: bytes, msg, note=""):
    V.append({"name": name, "direction": direction, "canonical": False, "frame_hex": frame(body).hex(), "message": msg, "note": note})
def bad(name, raw: bytes, err, note=""):
    V.append({"name": name, "frame_hex": raw.hex(), "error": err, "note": note})

valid("init_ping", "request", {"id": 0, "command": "ping", "args": {"initialization": True}})
valid("ping", "request", {"id": 1, "command": "ping", "args": {}})
valid("request_full", "request", {"id": 42, "command": "execute_program", "args": {"program_id": "qa", "inputs": {"question": "What is Go?"}}, "session": "s-1", "deadline_ms": 1500})
valid("request_unicode", "request", {"id": 7, "command": "echo", "args": {"value": "héllo wörld — 世界 🎉 \"quoted\" \\ back\nnew"}})
valid("request_max_id", "request", {"id": 9007199254740991, "command": "ping", "args": {}}, "largest id: 2^53-1")
valid("response_success", "response", {"id": 1, "success": True, "result": {"pong": True}})
valid("response_null_result", "response", {"id": 3, "success": True, "result": None})
valid("response_error", "response", {"id": 2, "success": False, "error": {"code": "not_found", "message": "program 'qa' not found"}})
valid("response_error_traceback", "response", {"id": 5, "success": False, "error": {"code": "internal", "message": "division by zero", "type": "ZeroDivisionError", "traceback": "Traceback (most recent call last):\n  File \"x.py\", line 1\nZeroDivisionError: division by zero\n"}})
valid("response_unicode", "response", {"id": 8, "success": True, "result": {"answer": "Grüße, 世界 🎉", "list": [1, 2.5, True, None]}})
noncanon("request_no_args", "request", b'{"id":4,"command":"ping"}', {"id": 4, "command": "ping"}, "args is optional")
noncanon("request_spaces_order", "request", b'{ "command" : "ping" , "args" : { } , "id" : 11 }', {"id": 11, "command": "ping", "args": {}}, "whitespace and key order do not matter when decoding")
noncanon("request_unknown_field", "request", b'{"id":12,"command":"ping","args":{},"kind_x":"future"}', {"id": 12, "command": "ping", "args": {}, "kind_x": "future"}, "unknown fields are ignored")
noncanon("request_escaped_key", "request", b'{"\\u0069d":13,"command":"ping"}', {"id": 13, "command": "ping"}, "keys are compared after unescaping")
noncanon("request_duplicate_key", "request", b'{"id":1,"command":"ping","id":14}', {"id": 14, "command": "ping"}, "a repeated key: the last one wins")
noncanon("request_null_optionals", "request", b'{"id":15,"command":"ping","args":null,"session":null,"deadline_ms":null}', {"id": 15, "command": "ping", "args": None, "session": None, "deadline_ms": None}, "optional fields may be null: the same as absent")
noncanon("request_negative_zero_id", "request", b'{"id":-0,"command":"ping"}', {"id": 0, "command": "ping"}, "JSON's -0 is the integer 0")
noncanon("response_legacy_string_error", "response", b'{"id":6,"success":false,"error":"boom"}', {"id": 6, "success": False, "error": "boom"}, "older workers send the error as a plain string; it decodes as code unknown")
noncanon("response_escaped_unicode", "response", b'{"id":9,"success":true,"result":"caf\\u00e9 \\ud83c\\udf89"}', {"id": 9, "success": True, "result": "café 🎉"}, "JSON escapes decode to the same text")

bad("truncated_header_1_byte", b"\x00", "truncated_header")
bad("truncated_header", b"\x00\x00\x00", "truncated_header")
bad("truncated_body", struct.pack(">I", 20) + b'{"id":1,', "truncated_body")
bad("frame_too_large", struct.pack(">I", 16777217), "frame_too_large", "header announces one byte over the 16 MiB default limit; no body follows and none may be allocated")
bad("frame_too_large_max_u32", b"\xff\xff\xff\xff", "frame_too_large")
bad("raw_json_without_header", b'{"id":1,"command":"ping","args":{}}', "frame_too_large", "the seed's Pattern 1: JSON written with no length header reads as a length of 2065852772 bytes")
bad("empty_body", frame(b""), "invalid_json")
bad("invalid_json", frame(b'{"id":1,"command":'), "invalid_json")
bad("invalid_json_nan", frame(b'{"id":1,"command":"ping","args":{"x":NaN}}'), "invalid_json", "NaN and Infinity are not JSON")
bad("invalid_json_trailing", frame(b'{"id":1,"command":"ping"} {}'), "invalid_json", "one object per frame, nothing after it")
bad("invalid_utf8", frame(b'{"id":1,"command":"p\xffing"}'), "invalid_utf8")
bad("not_object_array", frame(b'[1,2,3]'), "not_object")
bad("not_object_string", frame(b'"ping"'), "not_object")
bad("not_object_null", frame(b'null'), "not_object")
bad("missing_id", frame(b'{"command":"ping","args":{}}'), "missing_id")
bad("uppercase_id", frame(b'{"ID":1,"command":"ping"}'), "missing_id", "keys match exactly")
bad("null_id", frame(b'{"id":null,"command":"ping"}'), "invalid_id")
bad("negative_id", frame(b'{"id":-1,"command":"ping"}'), "invalid_id")
bad("float_id_integral", frame(b'{"id":1.0,"command":"ping"}'), "invalid_id", "1.0 is a float, not an integer id")
bad("exponent_id", frame(b'{"id":1e2,"command":"ping"}'), "invalid_id")
bad("float_id", frame(b'{"id":1.5,"command":"ping"}'), "invalid_id")
bad("string_id", frame(b'{"id":"1","command":"ping"}'), "invalid_id")
bad("bool_id", frame(b'{"id":true,"command":"ping"}'), "invalid_id")
bad("id_too_large", frame(b'{"id":9007199254740992,"command":"ping"}'), "invalid_id", "ids stay below 2^53 so every JSON implementation reads them exactly")

doc = {
  "about": "Wire vectors shared by the Go codec tests (protocol/) and the Python worker tests (python/tests/). frame_hex is the whole frame: 4-byte big-endian length, then the UTF-8 JSON body. A vector with 'message' decodes to that object; when 'canonical' is true, encoding 'message' (keys in the order given) must give frame_hex byte for byte. A vector with 'error' must fail to decode with that error kind. Decoding uses max_frame_bytes.",
  "max_frame_bytes": 16777216,
  "error_kinds": ["truncated_header", "truncated_body", "frame_too_large", "invalid_utf8", "invalid_json", "not_object", "missing_id", "invalid_id"],
  "vectors": V,
}
with open("vectors.json", "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
