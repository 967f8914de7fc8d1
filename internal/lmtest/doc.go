// Package lmtest is an OpenAI-compatible chat completions server for tests.
// It answers DSPy's and dspgo's prompts with deterministic typed values,
// records every request, and misbehaves on demand (latency, error statuses,
// malformed or unparseable replies, dropped connections).
//
// Go tests start one in process with New(t, Options{}) (closed when the test
// ends) or Start(Options{}) (closed by Close); Python tests start the
// lmtestd command (internal/lmtest/lmtestd). Either way the server listens
// on loopback only (127.0.0.1, port chosen by the system; a non-loopback
// address is refused), and each Server has its own state.
//
// # Endpoints
//
//   - POST /v1/chat/completions (also /chat/completions): a chat completion,
//     or with "stream": true a stream of Server-Sent Events: chunks
//     "data: {chat.completion.chunk}" whose choices[0].delta.content are the
//     reply's Pieces (the first delta also carries "role": "assistant"),
//     then a chunk with finish_reason "stop", then a chunk with "choices": []
//     and the usage (always, as OpenAI does with
//     stream_options.include_usage), then "data: [DONE]"; each event is
//     flushed. Options.ChunkDelay (or the chunk_delay directive) is waited
//     before each piece. Unknown request fields are ignored; "n" gives n
//     identical choices.
//   - GET /v1/models: one model, test-model (any model name is accepted).
//   - GET /_test/requests: the recorded requests (Request) as a JSON array.
//   - POST /_test/reset: forget them (and the fail_first counts and the
//     scripted replies left).
//   - POST /_test/script with {"replies": ["...", ...]}: queue reply contents
//     (Server.Script); each chat request answered next (a failure takes
//     none) takes the next one as its content instead of the computed one,
//     in arrival order.
//   - GET /_test/wait?requests=N&done=N&canceled=N&timeout=10s: the requests
//     once at least N are recorded, done and canceled (each optional), or
//     504 when the timeout passes first. It lets a Python test wait for "the
//     server saw the cancellation" without sleeping.
//
// The /_test endpoints are also served under /v1 and answer loopback
// clients only; since the server listens on loopback only, they are never
// reachable from another machine.
//
// Usage: prompt_tokens is the number of whitespace-separated words of all
// the messages' texts, completion_tokens that of the reply content (times
// n), total_tokens their sum (CountTokens).
//
// # Formats
//
// The reply's content answers the output fields the prompt asks for, in the
// prompt's format (Respond computes it; Request.Format records it):
//
//   - FormatChat, DSPy's ChatAdapter (DSPy 3.4) and dspgo's native prompt:
//     the system message lists "Your output fields are:" as numbered lines
//     "1. `answer` (int): description". The reply is "[[ ## answer ## ]]\n"
//     and the value, a blank line, for each field in order, then
//     "[[ ## completed ## ]]\n". A str value (or a Literal's string member) is
//     written as it is, any other value as JSON.
//   - FormatJSON, DSPy's JSONAdapter: the request has a response_format of
//     type json_schema (the fields are its schema's properties, typed by the
//     system message's field list when it lists them, else by their schema)
//     or json_object, or the system message says "Outputs will be a JSON
//     object with the following fields.", or the last user message asks
//     "Respond with a JSON object in the following order of fields: "
//     (DSPy's BAMLAdapter, whose system message writes the outputs as
//     sections). The reply is one JSON object holding every field, in
//     order.
//   - FormatXML, DSPy's XMLAdapter: the last user message asks "Respond
//     with the corresponding output fields wrapped in XML tags ". The
//     reply is "<answer>\n", the value as FormatChat writes it with "&"
//     and "<" escaped, and "\n</answer>" for each field in order, a blank
//     line between (a list, dict or model value as JSON, which XMLAdapter
//     reads only for some types).
//   - FormatText, anything else: the reply is PlainText.
//
// ReAct. DSPy's ReAct step (output fields next_thought, next_tool_name, a
// Literal of the tool names and 'finish', and next_tool_args), which dspgo's
// native engine sends too, follows one policy: when the last user message
// shows no tool call yet (no [[ ## tool_name_0 ## ]] or
// [[ ## observation_0 ## ]] section), call the first tool that is not
// finish, its arguments filled by the value rule from the argument schemas
// the prompt gives ("(1) weather, whose description is <desc>...</desc>. It
// takes arguments {'city': {'type': 'string'}}."), each argument named by
// itself; after a call, finish with {}. next_thought is an ordinary str field. The
// extraction step of DSPy's ReAct is an ordinary prompt.
//
// # The value rule
//
// A field's value depends only on its name and its type, never on the rest
// of the prompt, so that every prompt style asking for the same fields gets
// the same values (Value and ValueFromSchema compute them). With h the 64-bit
// FNV-1a hash of the name's UTF-8 bytes (NameHash):
//
//   - str, Any, and every type name not known here: "<name> <a> <b>" with a =
//     h & 0xffff and b = (h >> 16) & 0xffff as four lower-case hex digits,
//     e.g. "answer 1a2b 3c4d" (Any is written as a JSON string);
//   - int: 1 + h % 100;
//   - float: c/100 with c = h % 10000, plus 1 when c % 100 == 0: two
//     decimals, never integral (0.01 to 99.99), the same float in Go, JSON and
//     Python;
//   - bool: h % 2 == 0;
//   - None / NoneType: null;
//   - date (datetime.date; a JSON schema's string of format "date"):
//     2000-01-01 plus h % 36525 days, "YYYY-MM-DD";
//   - datetime (datetime.datetime; format "date-time"): that day at
//     h % 86400 seconds past midnight, "YYYY-MM-DDTHH:MM:SSZ";
//   - Literal[...]: its first member, of its own type (Literal['a', 'b'] is
//     "a", Literal[1, 2] is 1); an enum in a JSON schema likewise;
//   - Optional[T], T | None, Union[...]: the value of the first member that
//     is not None;
//   - list[T] (also List, Sequence, set, frozenset, tuple[T, ...]): two
//     elements, the values of T for the names "<name>[0]" and "<name>[1]";
//   - tuple[A, B, ...]: the value of each member for "<name>[i]";
//   - dict[K, V] (also Dict, Mapping): two entries i = 0, 1 whose values are
//     those of V for "<name>[i]" and whose keys are "key0" and "key1" when K
//     is str or Any, else the text of K's value for "<name>[i]" (an entry whose
//     key repeats is left out);
//   - an object with properties (a pydantic model's JSON schema): each
//     property's value for "<name>.<property>" (for "<property>" when the
//     name is empty, as for a tool's arguments).
//
// Type strings are read as DSPy writes them (get_annotation_name: "str",
// "list[int]", "dict[str, float]", "Literal['a', 'b']",
// "Union[int, NoneType]", "tuple[int, str]", "tuple[int, Ellipsis]", "Any")
// and as dspgo writes them ("dict[str, T]", "Literal['a', 'b']",
// "Optional[int]", "tuple[int, ...]"), with or without a "typing." prefix.
// A field whose type name is unknown (a pydantic model's class name) takes
// its type from the JSON schema its prompt gives for it ("# note: the value
// you produce must adhere to the JSON schema: ..."), else it is str. JSON
// schemas map as: string (of format date or date-time: a date or
// datetime), integer, number, boolean, null, array (items, or
// prefixItems for a tuple), object (properties, or additionalProperties for
// a dict), enum and const (Literal), anyOf and oneOf (the first member that
// is not null), $ref into $defs.
//
// # Directives
//
// A test picks a behaviour per request through the model name, with
// directives after a "+", separated by commas (ParseModel):
//
//	test-model                          a normal reply
//	test-model+latency=2s               wait 2s before replying
//	test-model+chunk_delay=50ms         wait 50ms before each stream piece
//	test-model+status=401               an OpenAI-shaped error, status 401
//	test-model+status=429,retry_after=1 429 with "Retry-After: 1" (429 says 1 by default)
//	test-model+status=500,fail_first=2  fail the first 2 requests of this model name, then reply
//	test-model+malformed                200 whose body is not valid JSON
//	test-model+garbage                  a valid reply whose content no adapter can parse
//	test-model+drop                     close the connection without a response
//	test-model+drop_mid_stream          send part of the stream, then close the connection
//	test-model+needs_demos              answer from the prompt's demos only (demos.go)
//	test-model+max_context=500          400 context_length_exceeded when the prompt holds over 500 tokens
//
// A duration is Go's ("2s", "50ms") or a bare number of seconds. fail_first
// without a failure fails with status 500; its counts are kept per model
// name as sent (directives included), so two tests with different names do
// not share them. An unknown directive is answered with 400. litellm strips
// its provider prefix: DSPy configured with "openai/test-model+status=429"
// sends "test-model+status=429". In Go, Options.Latency, Options.ChunkDelay,
// Options.Faults and Options.Fault set the same behaviours (Fault).
//
// Error replies are {"error": {"message", "type", "param", "code"}}, with
// the type and code OpenAI uses for the status (429: "requests" and
// "rate_limit_exceeded"; 401: "invalid_request_error" and
// "invalid_api_key"; 5xx: "server_error").
//
// # What DSPy sends
//
// As observed with DSPy 3.4.1 (testdata holds captured requests, made by
// testdata/capture.py): with its default engine DSPy speaks to the server
// itself (User-Agent lm15/stdlib), sends max_completion_tokens rather than
// max_tokens, and "stream_options": {"include_usage": true} when streaming;
// its JSONAdapter sends no response_format there, so the JSON format is
// recognised from the system message. With engine="litellm" (User-Agent
// DSPy/3.4.1) it sends max_tokens and, for the JSONAdapter, a
// response_format of json_object (json_schema, with $defs, for model names
// litellm knows to support it). Both strip the "openai/" prefix: the model
// arrives as "test-model+status=429". Temperature and max tokens are sent
// only when the LM is given them.
//
// # Recording and cancellation
//
// Every request to the chat endpoint is recorded when it arrives, whether
// it then succeeds or fails, and its record completed when the server is
// done with it (Request). A request whose client goes away (its context
// ends) before the reply is written in full is marked Canceled at once: the
// latency and chunk waits end with the context. Wait, WaitRequests,
// WaitDone and WaitCanceled block until the records say so, without
// polling. Close ends every request in flight and returns when all the
// server's goroutines have.
package lmtest
